-- Pass-through placeholder used by the dev cluster only while
-- slurm_hooks/job_submit.lua does not exist (JobSubmitPlugins=lua needs a file).
function slurm_job_submit(job_desc, part_list, submit_uid)
  return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return slurm.SUCCESS
end
