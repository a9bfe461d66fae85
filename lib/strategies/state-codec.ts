/**
 * The default state encoding shared by every built-in strategy and its Lua twin: the numbers of
 * the state joined by commas. Both sides accept exactly the same texts (plain decimal numbers,
 * optionally with a fraction and an exponent), so a corrupt stored value is rejected identically
 * by JS and by Lua and then treated as no state.
 */
import type { StrategyState } from '../../types/strategy.js'

const NUMBER_TEXT = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/

export function encodeState (state: StrategyState): string {
  return state.join(',')
}

/** Parses one number written by `encodeState` or the Lua `fmt`; undefined for anything else. */
function parseNumber (text: string): number | undefined {
  if (!NUMBER_TEXT.test(text)) return undefined
  const value = Number(text)
  return Number.isFinite(value) ? value : undefined
}

/** Returns undefined for anything that is not a comma-separated list of `length` finite numbers. */
export function decodeState (raw: string, length: number): StrategyState | undefined {
  const state = decodeList(raw)
  return state !== undefined && state.length === length ? state : undefined
}

/**
 * Decodes a comma-separated list of any length (the empty string is the empty list);
 * undefined when any part is not a finite number.
 */
export function decodeList (raw: string): StrategyState | undefined {
  if (raw === '') return []
  const parts = raw.split(',')
  const state: number[] = new Array(parts.length)
  for (let i = 0; i < parts.length; i++) {
    const value = parseNumber(parts[i]!)
    if (value === undefined) return undefined
    state[i] = value
  }
  return state
}

/** True when every number of the state is an integer (the built-in strategies only store integers). */
export function isIntegral (state: StrategyState): boolean {
  for (const value of state) if (!Number.isInteger(value)) return false
  return true
}

/**
 * Lua helpers every twin starts with: `decode_list(raw)` parses any list (nil when malformed),
 * `decode_state(raw, n)` a list of exactly `n` numbers, `fmt(v)` writes a number the way JS
 * reads it back. Kept as a string so each strategy file holds its whole Lua twin next to its JS step.
 */
export const LUA_DECODE = `
local function finite(v)
  if v == nil or v ~= v or v == math.huge or v == -math.huge then return nil end
  return v
end
local function parse_number(text)
  -- Integers, what the built-in strategies store, skip the fraction and exponent checks.
  if string.find(text, '^%-?%d+$') then return finite(tonumber(text)) end
  local rest = string.match(text, '^%-?%d+(.*)$')
  if rest == nil then return nil end
  rest = string.gsub(rest, '^%.%d+', '', 1)
  rest = string.gsub(rest, '^[eE][+-]?%d+', '', 1)
  if rest ~= '' then return nil end
  return finite(tonumber(text))
end
local function decode_list(raw)
  if not raw then return nil end
  local out = {}
  if raw == '' then return out end
  local pos = 1
  while true do
    local comma = string.find(raw, ',', pos, true)
    local part
    if comma then part = string.sub(raw, pos, comma - 1) else part = string.sub(raw, pos) end
    local v = parse_number(part)
    if v == nil then return nil end
    out[#out + 1] = v
    if not comma then return out end
    pos = comma + 1
  end
end
local function decode_state(raw, n)
  if n == 2 and raw then
    -- The common two-integer state in one match instead of a walk over its parts.
    local a, b = string.match(raw, '^(%-?%d+),(%-?%d+)$')
    if a then
      a, b = finite(tonumber(a)), finite(tonumber(b))
      if a == nil or b == nil then return nil end
      return { a, b }
    end
  end
  local out = decode_list(raw)
  if out == nil or #out ~= n then return nil end
  return out
end
local function is_integral(s)
  for i = 1, #s do
    if s[i] ~= math.floor(s[i]) then return false end
  end
  return true
end
local function fmt(v)
  if v == math.floor(v) and math.abs(v) < 9007199254740992 then return string.format('%d', v) end
  return string.format('%.17g', v)
end
`
