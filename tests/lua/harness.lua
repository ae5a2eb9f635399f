-- Runs job_submit.lua outside slurmctld with a stub `slurm` table.
-- usage: lua5.1 harness.lua HOOK_PATH CALLS JOB_JSON PART_JSON
-- Prints one JSON line per call: the job_desc after the call, rc, elapsed ms, log lines.
local cjson = require "cjson"
local socket = require "socket"
local hook_path, calls, job_json, part_json = arg[1], tonumber(arg[2]), arg[3], arg[4]
local logs = {}
slurm = {
    SUCCESS = 0, ERROR = -1,
    log_info = function(fmt, ...) logs[#logs + 1] = string.format(fmt, ...) end,
}
dofile(hook_path)
local part_list = cjson.decode(part_json)
for _ = 1, calls do
    local job_desc = cjson.decode(job_json)
    logs = {}
    local t0 = socket.gettime()
    local rc = slurm_job_submit(job_desc, part_list, 1000)
    local ms = (socket.gettime() - t0) * 1000
    print(cjson.encode({ job = job_desc, rc = rc, ms = ms, logs = logs }))
end
