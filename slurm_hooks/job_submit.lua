--[[
Foresight job_submit plugin for Slurm (job_submit/lua).

At submission it asks the Foresight service (POST /v1/jobs/score) for the
job's predicted run time, its QSSF site factor and placement hints, then:
  * sets job_desc.site_factor (added unweighted to the multifactor priority),
  * records the prediction in job_desc.admin_comment (sacct shows it),
  * adds hint nodes to exc_nodes, but only nodes that exist in the job's
    partition and only while enough other nodes remain to run the job.

It never makes Slurm less reliable: every failure (service down, hanging,
garbage, Lua error) leaves the job unchanged and accepted; a whole-request
deadline bounds each call; a circuit breaker stops calling for a while after
consecutive failures. One log line per decision goes to slurmctld's log.

It is cheap: slurmctld keeps this script's Lua state between submissions, so
one HTTP/1.1 keep-alive connection to the service is opened once and reused
(no connect, accept and close per job); a connection the service closed while
idle is noticed before sending and replaced, and one that dies under a request
before any answer is retried once, always within the same deadline.

Configuration: `job_submit_foresight.conf` beside this script (or the file
named by $FORESIGHT_HOOK_CONF), `key = value` lines; see that file.
Dependencies (Debian): lua-socket, lua-cjson.
]]

local socket_ok, socket = pcall(require, "socket")
local cjson_ok, cjson = pcall(require, "cjson.safe")

local M = {}

M.defaults = {
    url = "http://127.0.0.1:8765/v1/jobs/score",
    timeout_ms = 300,
    breaker_failures = 3,
    breaker_cooldown_s = 30,
    set_site_factor = true,
    record_prediction = true,
    apply_hints = true,
    dry_run = false,
    token_file = "",
    log_decisions = true,
}

local NO_VAL = 4294967294
local NO_VAL16 = 65534
local INFINITE = 4294967295

-- ---------------------------------------------------------------- config --

local function script_dir()
    local src = debug.getinfo(1, "S").source
    if src:sub(1, 1) == "@" then
        return src:sub(2):match("^(.*)/[^/]*$") or "."
    end
    return "."
end

local function parse_value(raw)
    if raw == "true" then return true end
    if raw == "false" then return false end
    local n = tonumber(raw)
    if n ~= nil then return n end
    return raw
end

--- Read `key = value` lines; unknown keys are logged and ignored.
function M.load_config(path)
    local cfg = {}
    for k, v in pairs(M.defaults) do cfg[k] = v end
    local fh = io.open(path, "r")
    if fh == nil then return cfg, "no config file at " .. path .. ", using defaults" end
    local problems = {}
    local lineno = 0
    for line in fh:lines() do
        lineno = lineno + 1
        local stripped = line:gsub("#.*$", ""):match("^%s*(.-)%s*$")
        if stripped ~= "" then
            local key, value = stripped:match("^([%w_]+)%s*=%s*(.-)$")
            if key == nil then
                problems[#problems + 1] = string.format("%s:%d: not key = value", path, lineno)
            elseif M.defaults[key] == nil then
                problems[#problems + 1] = string.format("%s:%d: unknown key %s", path, lineno, key)
            else
                cfg[key] = parse_value(value)
            end
        end
    end
    fh:close()
    if cfg.token_file ~= "" then
        local tf = io.open(cfg.token_file, "r")
        if tf then
            cfg.token = (tf:read("*l") or ""):match("^%s*(.-)%s*$")
            tf:close()
        else
            problems[#problems + 1] = "cannot read token_file " .. cfg.token_file
        end
    end
    return cfg, (#problems > 0) and table.concat(problems, "; ") or nil
end

-- ----------------------------------------------------------------- log ----

local function log(fmt, ...)
    local msg = "foresight: " .. string.format(fmt, ...)
    if slurm and slurm.log_info then slurm.log_info("%s", msg) else io.stderr:write(msg, "\n") end
end

-- ---------------------------------------------------------------- http ----

local function parse_url(url)
    local host, port, path = url:match("^http://([^:/]+):?(%d*)(/.*)$")
    if host == nil then return nil end
    return host, tonumber(port) or 80, path
end

-- One keep-alive connection, kept across job_submit calls: the Lua state lives
-- as long as slurmctld keeps the script loaded, and calls are serialised by the
-- plugin's lock, so a single connection is all the hook ever needs. It is
-- dropped after any error, and whenever the server does not offer to keep it.
M.conn = nil        -- { sock = ..., key = "host:port" }
M.request_head = {} -- "host:port path token" -> request line + fixed headers

local function drop_conn()
    if M.conn then M.conn.sock:close() end
    M.conn = nil
end

--- Is the idle connection still usable? A peer that closed it (keep-alive
-- timeout, restart) reads as "closed"; stray bytes mean it is out of step.
local function conn_alive(sock)
    sock:settimeout(0)
    local data, err = sock:receive(1)
    return data == nil and err == "timeout"
end

local function head_for(host, port, path, token)
    local key = host .. ":" .. port .. " " .. path .. " " .. (token or "")
    local head = M.request_head[key]
    if head == nil then
        local lines = {
            "POST " .. path .. " HTTP/1.1",
            "Host: " .. host .. ":" .. port,
            "Content-Type: application/json",
            "Connection: keep-alive",
        }
        if token and token ~= "" then lines[#lines + 1] = "Authorization: Bearer " .. token end
        head = table.concat(lines, "\r\n") .. "\r\nContent-Length: "
        M.request_head[key] = head
    end
    return head
end

--- Read one response from `sock` before `deadline`. Returns (status, body,
-- keep, nil) or (nil, error, nil, got_any_byte).
local function read_response(sock, deadline)
    local function wait()
        local remaining = deadline - socket.gettime()
        if remaining <= 0 then return false end
        sock:settimeout(remaining)
        return true
    end
    if not wait() then return nil, "timeout", nil, false end
    local line, err = sock:receive("*l")
    if line == nil then return nil, "receive: " .. tostring(err), nil, false end
    local version, status = line:match("^HTTP/(%d%.%d) (%d%d%d)")
    if status == nil then return nil, "not an HTTP response", nil, true end
    local length, chunked, connection = nil, false, nil
    while true do
        if not wait() then return nil, "timeout", nil, true end
        line, err = sock:receive("*l")
        if line == nil then return nil, "receive: " .. tostring(err), nil, true end
        if line == "" then break end
        local name, value = line:match("^([^:]+):%s*(.-)%s*$")
        if name then
            name = name:lower()
            if name == "content-length" then length = tonumber(value)
            elseif name == "transfer-encoding" then chunked = value:lower():find("chunked") ~= nil
            elseif name == "connection" then connection = value:lower() end
        end
    end
    local keep = (version == "1.1" and connection ~= "close") or connection == "keep-alive"
    local parts = {}
    if chunked then
        while true do
            if not wait() then return nil, "timeout", nil, true end
            line, err = sock:receive("*l")
            local size = line and tonumber(line:match("^%x+"), 16)
            if size == nil then return nil, "bad chunk: " .. tostring(err or line), nil, true end
            if not wait() then return nil, "timeout", nil, true end
            local chunk
            chunk, err = sock:receive(size + 2) -- data and its CRLF
            if chunk == nil then return nil, "receive: " .. tostring(err), nil, true end
            if size == 0 then break end -- (no trailers: the CRLF read above ends the body)
            parts[#parts + 1] = chunk:sub(1, size)
        end
    elseif length ~= nil then
        if length > 0 then
            if not wait() then return nil, "timeout", nil, true end
            local data
            data, err = sock:receive(length)
            if data == nil then return nil, "receive: " .. tostring(err), nil, true end
            parts[1] = data
        end
    else -- no length: the body ends when the server closes
        keep = false
        while true do
            if not wait() then return nil, "timeout", nil, true end
            local chunk, rerr, partial = sock:receive(8192)
            if chunk then
                parts[#parts + 1] = chunk
            else
                if partial and #partial > 0 then parts[#parts + 1] = partial end
                if rerr == "closed" then break end
                return nil, "receive: " .. tostring(rerr), nil, true
            end
        end
    end
    return tonumber(status), table.concat(parts), keep, nil
end

--- The part of timeout_s the hook leaves to its own work and to slurmctld (below).
function M.reserve_s(timeout_s)
    return math.min(math.max(0.015, timeout_s * 0.20), timeout_s * 0.5)
end

--- POST `body` to `url`; the whole exchange must finish within timeout_s.
-- The socket work gets the budget less a reserve (20% of it, at least 15 ms,
-- at most half) for the hook's own work (encoding, decoding, a late wake-up
-- from the OS) and for slurmctld catching up on what queued while the hook
-- held its locks (10-37 ms measured after a 270-285 ms wait; with a 15%
-- reserve the whole sbatch still ran up to 301 ms more for a 300 ms timeout),
-- so the whole submission stays within the configured timeout. The connection is reused across calls; a
-- reused one that turns out closed before any answer arrived (the server's
-- keep-alive ran out) is replaced once, within the same deadline.
-- Returns (status, response_body, reused) or (nil, error).
function M.http_post(url, body, timeout_s, token)
    if not socket_ok then return nil, "lua-socket not installed" end
    local host, port, path = parse_url(url)
    if host == nil then return nil, "bad url " .. tostring(url) end
    local deadline = socket.gettime() + timeout_s - M.reserve_s(timeout_s)
    local key = host .. ":" .. port
    local request = head_for(host, port, path, token) .. #body .. "\r\n\r\n" .. body
    if M.conn and (M.conn.key ~= key or not conn_alive(M.conn.sock)) then drop_conn() end
    for _ = 1, 2 do
        local reused = M.conn ~= nil
        if not reused then
            local remaining = deadline - socket.gettime()
            if remaining <= 0 then return nil, "timeout" end
            local sock = socket.tcp()
            sock:settimeout(remaining)
            local ok, err = sock:connect(host, port)
            if not ok then sock:close(); return nil, "connect: " .. tostring(err) end
            sock:setoption("tcp-nodelay", true)
            M.conn = { sock = sock, key = key }
        end
        local sock = M.conn.sock
        local remaining = deadline - socket.gettime()
        if remaining <= 0 then drop_conn(); return nil, "timeout" end
        sock:settimeout(remaining)
        local ok, err = sock:send(request)
        local status, resp, keep, got_any
        if ok then
            status, resp, keep, got_any = read_response(sock, deadline)
        else
            resp, got_any = "send: " .. tostring(err), false
        end
        if status ~= nil then
            if not keep then drop_conn() end
            return status, resp, reused
        end
        drop_conn()
        local stale = tostring(resp):find("closed") or tostring(resp):find("reset")
        if not (reused and not got_any and stale) then
            return nil, resp
        end
    end
    return nil, "connection closed twice"
end

-- ------------------------------------------------------- circuit breaker --

M.breaker = { failures = 0, open_until = 0 }

local function now() return socket_ok and socket.gettime() or os.time() end

function M.breaker_allows()
    return now() >= M.breaker.open_until
end

function M.breaker_record(success, cfg)
    if success then
        M.breaker.failures = 0
        M.breaker.open_until = 0
        return
    end
    M.breaker.failures = M.breaker.failures + 1
    if M.breaker.failures >= cfg.breaker_failures then
        M.breaker.open_until = now() + cfg.breaker_cooldown_s
        -- half-open after the cooldown: one more failure re-opens it at once
        M.breaker.failures = cfg.breaker_failures - 1
    end
end

-- ------------------------------------------------------------- hostlist --

--- Expand a Slurm hostlist expression ("n[1-3,5],gpu01") into a set.
function M.expand_hostlist(expr)
    local set = {}
    if expr == nil or expr == "" then return set end
    -- split on commas that are not inside brackets
    local depth, start = 0, 1
    local items = {}
    for i = 1, #expr do
        local ch = expr:sub(i, i)
        if ch == "[" then depth = depth + 1
        elseif ch == "]" then depth = depth - 1
        elseif ch == "," and depth == 0 then
            items[#items + 1] = expr:sub(start, i - 1)
            start = i + 1
        end
    end
    items[#items + 1] = expr:sub(start)
    for _, item in ipairs(items) do
        local prefix, ranges, suffix = item:match("^([^%[]*)%[([^%]]*)%](.*)$")
        if prefix == nil then
            if item ~= "" then set[item] = true end
        else
            for range in ranges:gmatch("[^,]+") do
                local a, b = range:match("^(%d+)%-(%d+)$")
                if a == nil then a, b = range, range end
                local width = #a
                for n = tonumber(a), tonumber(b) do
                    set[prefix .. string.format("%0" .. width .. "d", n) .. suffix] = true
                end
            end
        end
    end
    return set
end

local function count(set)
    local n = 0
    for _ in pairs(set) do n = n + 1 end
    return n
end

-- ----------------------------------------------------------- job fields --

local function unset(v)
    return v == nil or v == NO_VAL or v == NO_VAL16 or v == INFINITE
end

local function gpus_from_tres(tres)
    if tres == nil or tres == "" then return 0 end
    local total = 0
    for item in tostring(tres):gmatch("[^,]+") do
        -- gres/gpu:2, gres:gpu:2, gpu:a100:2, gres/gpu=2
        if item:find("gpu") then
            local n = tonumber(item:match("[:=](%d+)$"))
            total = total + (n or 1)
        end
    end
    return total
end

--- The partition records a job asked for: each one it names (`-p a,b`), in
-- that order, or the default partition when it names none.
function M.job_partitions(part_list, partition)
    local found = {}
    if part_list == nil then return found end
    local by_name, default = {}, nil
    for name, part in pairs(part_list) do
        by_name[part.name or name] = part
        if part.flag_default == 1 or part.default == 1 then default = part end
    end
    if partition == nil or partition == "" then
        found[1] = default
        return found
    end
    for pname in partition:gmatch("[^,]+") do
        found[#found + 1] = by_name[pname]
    end
    return found
end

--- The limit Slurm will apply to a job that names none: its partition's
-- DefaultTime, else its MaxTime (minutes), else nil.
function M.partition_time_limit(part_list, partition)
    for _, part in ipairs(M.job_partitions(part_list, partition)) do
        for _, key in ipairs({ "default_time", "max_time" }) do
            if not unset(part[key]) then return part[key] end
        end
    end
    return nil
end

--- The score request for a job descriptor (and, on modify, its job record).
function M.describe(job_desc, job_rec, part_list)
    local function pick(field)
        local v = job_desc[field]
        if unset(v) and job_rec ~= nil then v = job_rec[field] end
        if unset(v) then return nil end
        return v
    end
    local time_limit = pick("time_limit") or M.partition_time_limit(part_list, job_desc.partition)
    local nodes = pick("min_nodes")
    local cpus = pick("min_cpus")
    -- the service wants the job's total memory (MiB): per node x nodes, or per CPU x CPUs
    local mem = pick("min_mem_per_node")
    if mem ~= nil then
        mem = mem * (nodes or 1)
    elseif pick("min_mem_per_cpu") ~= nil then
        mem = pick("min_mem_per_cpu") * (cpus or 1)
    end
    local tres = pick("tres_per_node") or pick("tres_per_job")
    local gpus = gpus_from_tres(tres)
    if pick("tres_per_node") and nodes then gpus = gpus * nodes end
    return {
        job_id = job_rec and job_rec.job_id or nil,
        user = pick("user_name") or tostring(pick("user_id") or ""),
        account = pick("account") or pick("default_account") or "",
        partition = pick("partition") or "",
        qos = pick("qos") or "",
        name = pick("name") or "",
        time_limit = time_limit and time_limit * 60 or nil,
        cpus = cpus,
        gpus = gpus,
        tres_per_node = tres,
        nodes = nodes,
        mem_mb = mem,
        submit_time = os.time(),
        features = pick("features"),
    }
end

-- ---------------------------------------------------------------- hints --

--- Node names of the partitions the job asked for (see job_partitions).
function M.partition_nodes(part_list, partition)
    local nodes = {}
    for _, part in ipairs(M.job_partitions(part_list, partition)) do
        for node in pairs(M.expand_hostlist(part.nodes)) do nodes[node] = true end
    end
    return nodes
end

--- Valid nodes to exclude: known to the partition, and never so many that
-- fewer than the job's node count would remain. Returns (list, dropped).
function M.valid_exclusions(avoid, known, min_nodes, already_excluded)
    local keep, dropped = {}, {}
    local excluded = {}
    for n in pairs(already_excluded or {}) do excluded[n] = true end
    local remaining = count(known) - count(excluded)
    for _, node in ipairs(avoid or {}) do
        if type(node) ~= "string" or not known[node] then
            dropped[#dropped + 1] = tostring(node) .. "(unknown)"
        elseif excluded[node] then
            -- already excluded by the user: nothing to do
        elseif remaining - 1 < math.max(min_nodes or 1, 1) then
            dropped[#dropped + 1] = node .. "(would leave too few nodes)"
        else
            keep[#keep + 1] = node
            excluded[node] = true
            remaining = remaining - 1
        end
    end
    return keep, dropped
end

-- --------------------------------------------------------------- decide --

local function admin_note(result)
    local interval = result.runtime_interval_s or {}
    return string.format("foresight:runtime=%d;lo=%d;hi=%d;gpu_time=%d;sf=%d;model=%s",
        math.floor(tonumber(result.runtime_s) or -1),
        math.floor(tonumber(interval[1]) or -1),
        math.floor(tonumber(interval[2]) or -1),
        math.floor(tonumber(result.gpu_time_s) or -1),
        math.floor(tonumber(result.site_factor) or 0),
        tostring(result.model_version or "?"))
end

local function merge_comment(old, note)
    if old == nil or old == "" then return note end
    local stripped = old:gsub("foresight:[^|]*", ""):gsub("^|+", ""):gsub("|+$", "")
    if stripped == "" then return note end
    return stripped .. "|" .. note
end

--- Ask the service and apply its answer to job_desc. Returns a log string.
function M.decide(job_desc, job_rec, part_list, cfg)
    if not socket_ok then return "skip: lua-socket missing" end
    if not cjson_ok then return "skip: lua-cjson missing" end
    if not M.breaker_allows() then return "skip: circuit open" end
    local request = M.describe(job_desc, job_rec, part_list)
    local body = cjson.encode(request)
    local t0 = now()
    local status, resp, reused = M.http_post(cfg.url, body, cfg.timeout_ms / 1000.0, cfg.token)
    local ms = (now() - t0) * 1000
    if status ~= nil and status >= 400 and status < 500 then
        -- the service is alive and refused this job's fields: not a reason to stop calling
        M.breaker_record(true, cfg)
        return string.format("fail-open: HTTP %d %s (%.2f ms)", status, resp:sub(1, 200), ms)
    end
    if status ~= 200 then
        M.breaker_record(false, cfg)
        return string.format("fail-open: %s (%.2f ms)",
            status and ("HTTP " .. status) or tostring(resp), ms)
    end
    local result = cjson.decode(resp)
    if type(result) ~= "table" or tonumber(result.site_factor) == nil then
        M.breaker_record(false, cfg)
        return string.format("fail-open: unusable response (%.2f ms)", ms)
    end
    M.breaker_record(true, cfg)
    local sf = math.floor(tonumber(result.site_factor))
    local actions = {}
    if cfg.set_site_factor then
        actions[#actions + 1] = "site_factor=" .. sf
        if not cfg.dry_run then job_desc.site_factor = sf end
    end
    if cfg.record_prediction then
        actions[#actions + 1] = "admin_comment"
        if not cfg.dry_run then
            job_desc.admin_comment = merge_comment(job_desc.admin_comment, admin_note(result))
        end
    end
    local hints = type(result.hints) == "table" and result.hints or nil
    if cfg.apply_hints and hints and type(hints.avoid_nodes) == "table" and #hints.avoid_nodes > 0 then
        local known = M.partition_nodes(part_list, request.partition)
        local current = M.expand_hostlist(job_desc.exc_nodes)
        local keep, dropped = M.valid_exclusions(hints.avoid_nodes, known, request.nodes, current)
        if #keep > 0 then
            local all = {}
            for n in pairs(current) do all[#all + 1] = n end
            for _, n in ipairs(keep) do all[#all + 1] = n end
            table.sort(all)
            actions[#actions + 1] = "exc_nodes+=" .. table.concat(keep, ",")
            if not cfg.dry_run then job_desc.exc_nodes = table.concat(all, ",") end
        end
        if #dropped > 0 then actions[#actions + 1] = "hints_dropped=" .. table.concat(dropped, ",") end
    end
    return string.format("%s%s runtime=%s model=%s conn=%s (%.2f ms)",
        cfg.dry_run and "dry-run " or "", table.concat(actions, " "),
        tostring(result.runtime_s), tostring(result.model_version),
        reused and "reused" or "new", ms)
end

-- ------------------------------------------------------- plugin entries --

local config_path = os.getenv("FORESIGHT_HOOK_CONF") or (script_dir() .. "/job_submit_foresight.conf")
local config, config_problem = M.load_config(config_path)
if config_problem then log("config: %s", config_problem) end

--- One decision, logged with total_ms: all the time slurmctld spent in Foresight's
-- code for it (describing the job, the round trip, applying the answer).
local function run(job_desc, job_rec, part_list, what)
    local t0 = now()
    local ok, outcome = pcall(M.decide, job_desc, job_rec, part_list, config)
    if not ok then outcome = "fail-open: error " .. tostring(outcome) end
    if config.log_decisions then
        log("%s user=%s name=%s %s total_ms=%.3f", what,
            tostring(job_desc.user_name or job_desc.user_id), tostring(job_desc.name), outcome,
            (now() - t0) * 1000)
    end
end

function slurm_job_submit(job_desc, part_list, submit_uid)
    run(job_desc, nil, part_list, "submit")
    return slurm.SUCCESS
end

--- Re-score when the time limit or size changes, so predictions stay true.
function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
    local changed = not unset(job_desc.time_limit) or not unset(job_desc.min_nodes)
        or not unset(job_desc.min_cpus) or job_desc.tres_per_node ~= nil
    if changed then run(job_desc, job_rec, part_list, "modify job=" .. tostring(job_rec.job_id)) end
    return slurm.SUCCESS
end

-- Exposed for the tests (tests/test_job_submit_lua.py load this file with a stub `slurm`).
foresight_hook = M
foresight_hook.config = config

return M
