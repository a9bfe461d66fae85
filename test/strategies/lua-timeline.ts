/**
 * A Lua driver that runs a whole strategy timeline inside Redis in one EVAL: the twin's state
 * evolves on its own, stored as the evaluation script stores it (an allowed hit, a refund, or a
 * rejection the step marks as kept), so parity tests compare it with the JS step step by step.
 *
 * ARGV: n, hasState ('1'/'0'), state, expiresAt, then per step: now, limit, window, cost, mode,
 * chargedAt ('' for none). Each step returns the state (or ABSENT) and results 2–7 formatted with
 * 17 significant digits, then each extra result index asked for (or its stated default).
 */
export const ABSENT = '<none>'

export interface ExtraResult {
  /** Index of the step's Lua return value (1-based). */
  index: number
  /** What the row holds when the step returns nothing there. */
  absent: number
}

export function luaTimelineDriver (lua: string, extras: readonly ExtraResult[] = []): string {
  const extraLines = extras.map((e) => `  out[#out + 1] = string.format('%.17g', r[${e.index}] or ${e.absent})`).join('\n')
  return `local step = (function() ${lua} end)()
local n = tonumber(ARGV[1])
local raw = false
if ARGV[2] == '1' then raw = ARGV[3] end
local expires = tonumber(ARGV[4])
local out = {}
local i = 5
for k = 1, n do
  local now, limit, window, cost, mode = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4]
  local charged_at = nil
  if ARGV[i + 5] ~= '' then charged_at = tonumber(ARGV[i + 5]) end
  i = i + 6
  if raw and now >= expires then raw = false end
  local refund = 0
  if mode == 'refund' then refund = 1 end
  local r = { step(raw, now, limit, window, cost, refund, charged_at) }
  if (mode == 'hit' and (r[3] == 1 or r[8] == 1)) or mode == 'refund' then
    if r[1] then
      raw = r[1]
      expires = now + r[2]
    else
      raw = false
    end
  end
  if r[1] then out[#out + 1] = r[1] else out[#out + 1] = '${ABSENT}' end
  for j = 2, 7 do out[#out + 1] = string.format('%.17g', r[j] or 0) end
${extraLines}
end
return out
`
}
