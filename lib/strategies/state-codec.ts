/**
 * The default state encoding shared by every built-in strategy and its Lua twin: the numbers of
 * the state joined by commas. Lua reads it with `string.gmatch(raw, '[^,]+')`.
 */
import type { StrategyState } from '../../types/strategy.js'

export function encodeState (state: StrategyState): string {
  return state.join(',')
}

/** Returns undefined for anything that is not a comma-separated list of `length` finite numbers. */
export function decodeState (raw: string, length: number): StrategyState | undefined {
  const parts = raw.split(',')
  if (parts.length !== length) return undefined
  const state: number[] = new Array(length)
  for (let i = 0; i < length; i++) {
    const value = Number(parts[i])
    if (!Number.isFinite(value) || parts[i] === '') return undefined
    state[i] = value
  }
  return state
}

/**
 * Lua helper every twin starts with: parses `raw` into a table of exactly `n` numbers, or nil.
 * Kept as a string so each strategy file holds its whole Lua twin next to its JS step.
 */
export const LUA_DECODE = `
local function decode_state(raw, n)
  if not raw then return nil end
  local out = {}
  for part in string.gmatch(raw, '[^,]+') do
    local v = tonumber(part)
    if v == nil or v ~= v or v == math.huge or v == -math.huge then return nil end
    out[#out + 1] = v
  end
  if #out ~= n then return nil end
  return out
end
local function fmt(v)
  if v == math.floor(v) and math.abs(v) < 9007199254740992 then return string.format('%d', v) end
  return string.format('%.17g', v)
end
`
