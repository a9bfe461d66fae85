/**
 * A small hand-written SVG: two horizontal bar panels (requests/second and added server CPU time
 * per request) with one row per throughput scenario. No dependency; the output is static text.
 */
export interface ChartRow { name: string, rps: number, addedCpu: number }

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function colour (name: string): string {
  if (name.startsWith('fastify-traffik')) return '#2f6db5'
  if (name.startsWith('@fastify/rate-limit')) return '#d9822b'
  if (name.startsWith('rate-limiter-flexible')) return '#3a9a5b'
  return '#8a8a8a'
}

export function renderChart (rows: ChartRow[], title: string): string {
  const labelWidth = 330
  const panelWidth = 300
  const gap = 70
  const rowHeight = 20
  const top = 56
  const height = top + rows.length * rowHeight + 30
  const width = labelWidth + panelWidth * 2 + gap + 40
  const maxRps = Math.max(1, ...rows.map((r) => r.rps))
  const maxCpu = Math.max(1, ...rows.map((r) => Math.max(0, r.addedCpu)))
  const cpuLeft = labelWidth + panelWidth + gap
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escape(title)}</text>`,
    `<text x="${labelWidth}" y="44" font-weight="bold">requests/second (median)</text>`,
    `<text x="${cpuLeft}" y="44" font-weight="bold">added server CPU µs/request (median, minus bare)</text>`
  ]
  rows.forEach((row, i) => {
    const y = top + i * rowHeight
    const rpsWidth = (row.rps / maxRps) * panelWidth
    const cpuWidth = (Math.max(0, row.addedCpu) / maxCpu) * panelWidth
    out.push(
      `<text x="${labelWidth - 8}" y="${y + 13}" text-anchor="end">${escape(row.name)}</text>`,
      `<rect x="${labelWidth}" y="${y + 3}" width="${rpsWidth.toFixed(1)}" height="${rowHeight - 6}" fill="${colour(row.name)}"/>`,
      `<text x="${(labelWidth + rpsWidth + 4).toFixed(1)}" y="${y + 13}">${Math.round(row.rps)}</text>`,
      `<rect x="${cpuLeft}" y="${y + 3}" width="${cpuWidth.toFixed(1)}" height="${rowHeight - 6}" fill="${colour(row.name)}"/>`,
      `<text x="${(cpuLeft + cpuWidth + 4).toFixed(1)}" y="${y + 13}">${row.addedCpu.toFixed(1)}</text>`
    )
  })
  out.push(`<text x="10" y="${height - 10}" fill="#555">blue: fastify-traffik · orange: @fastify/rate-limit · green: rate-limiter-flexible · grey: baselines</text>`, '</svg>', '')
  return out.join('\n')
}
