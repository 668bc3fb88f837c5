-- Refuses JSON request bodies that carry a field the target proto message does not define.
--
-- Envoy's grpc_json_transcoder drops unknown JSON fields silently (it has no
-- strict mode), so a typo such as "ammount_nanos" would reach the service as
-- "field not set". This filter runs just before the transcoder, on the REST
-- routes that take a body, and answers 400 INVALID_ARGUMENT with ErrorInfo
-- reason UNKNOWN_FIELD and metadata field=<dotted path> instead. A key given
-- twice in one object is refused too (DUPLICATE_FIELD): the transcoder keeps the
-- last, a proxy or log reader may believe the first.
--
-- ROUTES and MESSAGES are generated from the descriptor set (the same proto
-- descriptors the transcoder loads) by `make protos`, which writes this file
-- with the marker line below replaced to gen/gateway/strict_json.lua. A message's field map lists both the proto name and the lowerCamel JSON
-- name (the transcoder accepts either); a value of 0 means "any JSON value",
-- a message name means "an object (or array of objects) of that message",
-- and "map:" plus a name means "an object whose values are that message".
--
-- Anything that is not well-formed JSON is left to the transcoder, which
-- refuses it with its own 400: this filter only ever adds refusals for
-- unknown fields, never accepts what the transcoder would refuse.

ROUTES = {
  ["POST"] = {
    { "^/api/v1/coupons/create$", "creditmeter.coupons.v1.CreateCouponRequest" },
    { "^/api/v1/coupons/validate$", "creditmeter.coupons.v1.ValidateCouponRequest" },
    { "^/api/v1/coupons/redeem$", "creditmeter.coupons.v1.RedeemCouponRequest" },
    { "^/api/v1/coupons/[^/]+/disable$", "creditmeter.coupons.v1.DisableCouponRequest" },
    { "^/api/v1/credits/allocate$", "creditmeter.credits.v1.AllocateRequest" },
    { "^/api/v1/credits/deduct$", "creditmeter.credits.v1.DeductRequest" },
    { "^/api/v1/credits/refund$", "creditmeter.credits.v1.RefundRequest" },
    { "^/api/v1/credits/holds$", "creditmeter.credits.v1.CreateHoldRequest" },
    { "^/api/v1/credits/holds/[^/]+/capture$", "creditmeter.credits.v1.CaptureHoldRequest" },
    { "^/api/v1/credits/holds/[^/]+/release$", "creditmeter.credits.v1.ReleaseHoldRequest" },
    { "^/api/v1/credits/tier$", "creditmeter.credits.v1.SetTierRequest" },
    { "^/api/v1/credits/periods/reset$", "creditmeter.credits.v1.ResetPeriodsRequest" },
    { "^/api/v1/metering/authorize$", "creditmeter.metering.v1.AuthorizeRequest" },
    { "^/api/v1/metering/track$", "creditmeter.metering.v1.TrackUsageRequest" },
    { "^/api/v1/metering/track%-batch$", "creditmeter.metering.v1.TrackUsageBatchRequest" },
    { "^/api/v1/metering/parked/retry$", "creditmeter.metering.v1.RetryParkedEventsRequest" },
    { "^/api/v1/openrouter/create%-account$", "creditmeter.openrouter.v1.CreateAccountRequest" },
    { "^/api/v1/openrouter/sync%-balance$", "creditmeter.openrouter.v1.SyncBalanceRequest" },
    { "^/api/v1/openrouter/quote$", "creditmeter.openrouter.v1.QuotePriceRequest" },
    { "^/api/v1/openrouter/keys/rotate$", "creditmeter.openrouter.v1.RotateEncryptionKeysRequest" },
    { "^/api/v1/openrouter/models/sync$", "creditmeter.openrouter.v1.SyncModelsRequest" },
    { "^/api/v1/openrouter/rate%-card$", "creditmeter.openrouter.v1.UpdateRateCardRequest" },
  },
  ["PUT"] = {
    { "^/api/v1/openrouter/byok$", "creditmeter.openrouter.v1.SetByokKeyRequest" },
  },
}
MESSAGES = {
  ["creditmeter.coupons.v1.CreateCouponRequest"] = { ["code"] = 0, ["creditAmountNanos"] = 0, ["creditExpiryDays"] = 0, ["credit_amount_nanos"] = 0, ["credit_expiry_days"] = 0, ["description"] = 0, ["eligibleTiers"] = 0, ["eligible_tiers"] = 0, ["expiresAt"] = 0, ["expires_at"] = 0, ["firstTimeOnly"] = 0, ["first_time_only"] = 0, ["kind"] = 0, ["maxRedemptions"] = 0, ["max_redemptions"] = 0, ["perUserLimit"] = 0, ["per_user_limit"] = 0, ["requestId"] = 0, ["request_id"] = 0, ["stacksOnTrial"] = 0, ["stacks_on_trial"] = 0, ["trialDays"] = 0, ["trialTier"] = 0, ["trial_days"] = 0, ["trial_tier"] = 0, ["validFrom"] = 0, ["valid_from"] = 0 },
  ["creditmeter.coupons.v1.DisableCouponRequest"] = { ["code"] = 0, ["reason"] = 0, ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.coupons.v1.RedeemCouponRequest"] = { ["code"] = 0, ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.coupons.v1.ValidateCouponRequest"] = { ["code"] = 0 },
  ["creditmeter.credits.v1.AllocateRequest"] = { ["amountNanos"] = 0, ["amount_nanos"] = 0, ["expiresAt"] = 0, ["expires_at"] = 0, ["reason"] = 0, ["referenceId"] = 0, ["reference_id"] = 0, ["requestId"] = 0, ["request_id"] = 0, ["source"] = 0, ["userId"] = 0, ["user_id"] = 0 },
  ["creditmeter.credits.v1.CaptureHoldRequest"] = { ["amountNanos"] = 0, ["amount_nanos"] = 0, ["holdId"] = 0, ["hold_id"] = 0, ["model"] = 0, ["priceVersion"] = 0, ["price_version"] = 0, ["reason"] = 0, ["referenceId"] = 0, ["reference_id"] = 0, ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.credits.v1.CreateHoldRequest"] = { ["amountNanos"] = 0, ["amount_nanos"] = 0, ["reason"] = 0, ["referenceId"] = 0, ["reference_id"] = 0, ["requestId"] = 0, ["request_id"] = 0, ["ttlSeconds"] = 0, ["ttl_seconds"] = 0, ["userId"] = 0, ["user_id"] = 0 },
  ["creditmeter.credits.v1.DeductRequest"] = { ["amountNanos"] = 0, ["amount_nanos"] = 0, ["model"] = 0, ["priceVersion"] = 0, ["price_version"] = 0, ["reason"] = 0, ["referenceId"] = 0, ["reference_id"] = 0, ["requestId"] = 0, ["request_id"] = 0, ["userId"] = 0, ["user_id"] = 0 },
  ["creditmeter.credits.v1.RefundRequest"] = { ["amountNanos"] = 0, ["amount_nanos"] = 0, ["reason"] = 0, ["requestId"] = 0, ["request_id"] = 0, ["transactionId"] = 0, ["transaction_id"] = 0, ["userId"] = 0, ["user_id"] = 0 },
  ["creditmeter.credits.v1.ReleaseHoldRequest"] = { ["holdId"] = 0, ["hold_id"] = 0, ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.credits.v1.ResetPeriodsRequest"] = { ["requestId"] = 0, ["request_id"] = 0, ["userId"] = 0, ["user_id"] = 0 },
  ["creditmeter.credits.v1.SetTierRequest"] = { ["expectedChangeId"] = 0, ["expected_change_id"] = 0, ["reason"] = 0, ["requestId"] = 0, ["request_id"] = 0, ["tier"] = 0, ["userId"] = 0, ["user_id"] = 0 },
  ["creditmeter.metering.v1.AuthorizeRequest"] = { ["byok"] = 0, ["holdTtlSeconds"] = 0, ["hold_ttl_seconds"] = 0, ["inputTokens"] = 0, ["input_tokens"] = 0, ["maxOutputTokens"] = 0, ["max_output_tokens"] = 0, ["model"] = 0, ["quantity"] = 0, ["requestId"] = 0, ["request_id"] = 0, ["service"] = 0, ["userId"] = 0, ["user_id"] = 0 },
  ["creditmeter.metering.v1.RetryParkedEventsRequest"] = { ["eventIds"] = 0, ["event_ids"] = 0, ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.metering.v1.TrackUsageBatchRequest"] = { ["events"] = "creditmeter.metering.v1.UsageEvent" },
  ["creditmeter.metering.v1.TrackUsageRequest"] = { ["event"] = "creditmeter.metering.v1.UsageEvent" },
  ["creditmeter.metering.v1.UsageEvent"] = { ["byok"] = 0, ["eventId"] = 0, ["event_id"] = 0, ["holdId"] = 0, ["hold_id"] = 0, ["inputTokens"] = 0, ["input_tokens"] = 0, ["metadata"] = 0, ["model"] = 0, ["occurredAt"] = 0, ["occurred_at"] = 0, ["outputTokens"] = 0, ["output_tokens"] = 0, ["provider"] = 0, ["quantity"] = 0, ["service"] = 0, ["userId"] = 0, ["user_id"] = 0 },
  ["creditmeter.openrouter.v1.CreateAccountRequest"] = { ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.openrouter.v1.QuotePriceRequest"] = { ["byok"] = 0, ["inputTokens"] = 0, ["input_tokens"] = 0, ["model"] = 0, ["outputTokens"] = 0, ["output_tokens"] = 0, ["quantity"] = 0, ["service"] = 0, ["tier"] = 0 },
  ["creditmeter.openrouter.v1.RotateEncryptionKeysRequest"] = { ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.openrouter.v1.SetByokKeyRequest"] = { ["apiKey"] = 0, ["api_key"] = 0, ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.openrouter.v1.SyncBalanceRequest"] = { ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.openrouter.v1.SyncModelsRequest"] = { ["requestId"] = 0, ["request_id"] = 0 },
  ["creditmeter.openrouter.v1.TierRate"] = { ["byokMarkupBps"] = 0, ["byok_markup_bps"] = 0, ["freeModelFeePer1kTokensNanos"] = 0, ["free_model_fee_per_1k_tokens_nanos"] = 0, ["markupBps"] = 0, ["markup_bps"] = 0, ["tier"] = 0 },
  ["creditmeter.openrouter.v1.UnitPrice"] = { ["priceNanos"] = 0, ["price_nanos"] = 0, ["quantityPerUnit"] = 0, ["quantity_per_unit"] = 0, ["service"] = 0, ["unit"] = 0 },
  ["creditmeter.openrouter.v1.UpdateRateCardRequest"] = { ["requestId"] = 0, ["request_id"] = 0, ["tiers"] = "creditmeter.openrouter.v1.TierRate", ["unitPrices"] = "creditmeter.openrouter.v1.UnitPrice", ["unit_prices"] = "creditmeter.openrouter.v1.UnitPrice" },
}

local MAX_DEPTH = 64
local ESCAPES = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t' }
local byte, sub, find = string.byte, string.sub, string.find
local QUOTE, COLON, COMMA = 34, 58, 44
local OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY = 123, 125, 91, 93

local Unknown = {}
local Duplicate = {}

-- The keys and array positions from the top of the body down to the value being checked. A field's
-- dotted path is put together only when the field is refused: most bodies are refused nothing, and
-- building every path (one new string per key and per array element) was most of the filter's cost on
-- a 1,000-event batch. Set afresh for each request; the check never yields, so requests cannot mix.
local trail = {}

local function path_at(level)
  local out = ""
  for n = 1, level do
    local step = trail[n]
    if type(step) == "number" then
      out = out .. "[" .. step .. "]"
    elseif out == "" then
      out = step
    else
      out = out .. "." .. step
    end
  end
  return out
end

-- "map:<message>" -> "<message>" (the map's values), anything else -> false; remembered per kind.
local MAP_VALUES = setmetatable({}, {
  __index = function(known, kind)
    local values = sub(kind, 1, 4) == "map:" and sub(kind, 5) or false
    known[kind] = values
    return values
  end,
})

local function skip_ws(s, i)
  return find(s, "[^ \t\r\n]", i) or (#s + 1)
end

-- The escape at s[j] (a backslash): its text and the index after it, or nil if malformed.
-- Non-ASCII \u escapes decode to "?": no proto field name contains one, so such a key is unknown.
local function read_escape(s, j)
  local e = sub(s, j + 1, j + 1)
  if e == "u" then
    local hex = sub(s, j + 2, j + 5)
    if not string.match(hex, "^%x%x%x%x$") then return nil end
    local code = tonumber(hex, 16)
    return code < 128 and string.char(code) or "?", j + 6
  end
  local text = ESCAPES[e]
  if not text then return nil end
  return text, j + 2
end

-- Returns the decoded string starting at s[i] (its opening quote) and the index after its closing
-- quote, or nil if malformed. A string without escapes (nearly every key) is one find and one sub.
local function read_string(s, i)
  local k = find(s, '["\\]', i + 1)
  if not k then return nil end
  if byte(s, k) == QUOTE then return sub(s, i + 1, k - 1), k + 1 end
  local parts = { sub(s, i + 1, k - 1) }
  while true do
    local text, j = read_escape(s, k)
    if not text then return nil end
    parts[#parts + 1] = text
    k = find(s, '["\\]', j)
    if not k then return nil end
    parts[#parts + 1] = sub(s, j, k - 1)
    if byte(s, k) == QUOTE then return table.concat(parts), k + 1 end
  end
end

-- The index after the string value starting at s[i], or nil if malformed (the value itself is not needed).
local function skip_string(s, i)
  local k = find(s, '["\\]', i + 1)
  while k do
    if byte(s, k) == QUOTE then return k + 1 end
    local text, j = read_escape(s, k)
    if not text then return nil end
    k = find(s, '["\\]', j)
  end
  return nil
end

local check_value

-- Checks the object starting at s[i] against message `msg` (nil: no check); its fields are at
-- trail[level + 1]. Returns the index after it.
local function check_object(s, i, msg, level, values_msg)
  local fields = msg and MESSAGES[msg]
  local seen = {}
  local inner = level + 1
  i = skip_ws(s, i + 1)
  if byte(s, i) == CLOSE_OBJECT then return i + 1 end
  while true do
    if byte(s, i) ~= QUOTE then return nil end
    local key, after = read_string(s, i)
    if not key then return nil end
    trail[inner] = key
    if seen[key] then error({ Duplicate, path_at(inner) }) end
    seen[key] = true
    local child = nil
    if fields then
      child = fields[key]
      if child == nil then error({ Unknown, path_at(inner) }) end
    elseif values_msg then
      child = values_msg
    end
    i = skip_ws(s, after)
    if byte(s, i) ~= COLON then return nil end
    i = check_value(s, skip_ws(s, i + 1), child, inner)
    if not i then return nil end
    i = skip_ws(s, i)
    local c = byte(s, i)
    if c == CLOSE_OBJECT then return i + 1 end
    if c ~= COMMA then return nil end
    i = skip_ws(s, i + 1)
  end
end

-- Checks the JSON value at s[i]; `kind` is 0/nil (anything), a message name or "map:<message>";
-- `level` is how deep it is (trail[1..level] is its path).
check_value = function(s, i, kind, level)
  if level > MAX_DEPTH then return nil end
  local c = byte(s, i)
  if c == OPEN_OBJECT then
    if type(kind) ~= "string" then return check_object(s, i, nil, level, nil) end
    local values = MAP_VALUES[kind]
    if values then return check_object(s, i, nil, level, values) end
    return check_object(s, i, kind, level, nil)
  elseif c == OPEN_ARRAY then
    i = skip_ws(s, i + 1)
    if byte(s, i) == CLOSE_ARRAY then return i + 1 end
    local inner = level + 1
    local index = 0
    while true do
      trail[inner] = index
      i = check_value(s, i, kind, inner)
      if not i then return nil end
      i = skip_ws(s, i)
      local d = byte(s, i)
      if d == CLOSE_ARRAY then return i + 1 end
      if d ~= COMMA then return nil end
      i = skip_ws(s, i + 1)
      index = index + 1
    end
  elseif c == QUOTE then
    return skip_string(s, i)
  else
    local _, last = find(s, "^[%w%.%+%-]+", i)
    if not last then return nil end
    return last + 1
  end
end

-- Routes without a path parameter (nearly all) are found by one table lookup; the few with one are
-- matched in order. No two routes of a method match the same path (the transcoder could not tell them
-- apart either), so looking the literal ones up first finds what the ordered scan would.
local LITERAL, PARAMETERIZED = {}, {}
for method, routes in pairs(ROUTES) do
  LITERAL[method], PARAMETERIZED[method] = {}, {}
  for _, route in ipairs(routes) do
    local inner = string.match(route[1], "^%^(.*)%$$")
    if inner and not string.find((string.gsub(inner, "%%%p", "")), "[%^%$%(%)%%%.%[%]%*%+%-%?]") then
      LITERAL[method][(string.gsub(inner, "%%(%p)", "%1"))] = route[2]
    else
      table.insert(PARAMETERIZED[method], route)
    end
  end
end

local function route_message(method, path)
  local literal = LITERAL[method]
  if not literal then return nil end
  local bare = string.match(path, "^[^?]*")
  local msg = literal[bare]
  if msg then return msg end
  for _, route in ipairs(PARAMETERIZED[method]) do
    if string.match(bare, route[1]) then return route[2] end
  end
  return nil
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local msg = route_message(headers:get(":method"), headers:get(":path") or "")
  if not msg then return end
  local body = handle:body()
  if not body or body:length() == 0 then return end
  local s = body:getBytes(0, body:length())
  trail = {}
  local ok, err = pcall(check_value, s, skip_ws(s, 1), msg, 0)
  if ok or type(err) ~= "table" or (err[1] ~= Unknown and err[1] ~= Duplicate) then return end
  local field = string.sub(err[2], 1, 200)
  local metadata = handle:streamInfo():dynamicMetadata()
  metadata:set("creditmeter.edge", "field", field)
  if err[1] == Duplicate then
    metadata:set("creditmeter.edge", "reason", "DUPLICATE_FIELD")
    handle:respond({ [":status"] = "400" }, "field " .. field .. " appears twice: the request is ambiguous")
  else
    metadata:set("creditmeter.edge", "reason", "UNKNOWN_FIELD")
    handle:respond({ [":status"] = "400" }, "unknown field " .. field .. ": the request message has no such field")
  end
end
