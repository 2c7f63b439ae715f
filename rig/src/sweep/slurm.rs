//! Slurm: a job array with one task per shard, and a gather job that waits for the array.
//!
//! The scripts are written into `slurm/` in the sweep folder, so what was submitted can be read
//! and resubmitted by hand. The array task runs `twinloop sweep run --shard
//! $SLURM_ARRAY_TASK_ID`; the gather job depends on the array with `afterany`, so it runs
//! whether shards succeed or fail and lists the ones that failed. The binary is this one, by its
//! absolute path: the sweep folder and the binary must be on a file system the compute nodes
//! share.

use super::SweepError;
use super::plan::Plan;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The two scripts, written.
pub struct Scripts {
    pub array: PathBuf,
    pub gather: PathBuf,
}

/// The job ids Slurm gave.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Submitted {
    pub array_job: String,
    pub gather_job: String,
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Writes the array and gather scripts for `plan` in `root`, running `binary`.
pub fn write_scripts(plan: &Plan, root: &Path, binary: &Path) -> Result<Scripts, SweepError> {
    let dir = root.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|source| SweepError::Io {
        path: dir.clone(),
        source,
    })?;
    let s = &plan.slurm;
    let mut array = String::from("#!/bin/bash\n");
    let _ = writeln!(array, "#SBATCH --job-name=twinloop-{}", plan.name);
    let limit = s.max_running.map(|k| format!("%{k}")).unwrap_or_default();
    let _ = writeln!(array, "#SBATCH --array=0-{}{limit}", plan.shards - 1);
    let _ = writeln!(array, "#SBATCH --cpus-per-task={}", s.cpus_per_task);
    let _ = writeln!(array, "#SBATCH --mem={}", s.mem);
    let _ = writeln!(array, "#SBATCH --time={}", s.time);
    if let Some(g) = &s.gres {
        let _ = writeln!(array, "#SBATCH --gres={g}");
    }
    if let Some(p) = &s.partition {
        let _ = writeln!(array, "#SBATCH --partition={p}");
    }
    let _ = writeln!(array, "#SBATCH --output={}/shard-%a.out", dir.display());
    let _ = writeln!(array, "#SBATCH --chdir={}", root.display());
    array.push_str("set -euo pipefail\n");
    // Each shard's threads are the CPUs Slurm granted it, not the node's.
    array.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    array.push_str("export OMP_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    let _ = writeln!(
        array,
        "exec {} sweep run {} --shard \"$SLURM_ARRAY_TASK_ID\"",
        quote(binary),
        quote(root)
    );
    let mut gather = String::from("#!/bin/bash\n");
    let _ = writeln!(gather, "#SBATCH --job-name=twinloop-{}-gather", plan.name);
    gather.push_str("#SBATCH --cpus-per-task=1\n#SBATCH --mem=1G\n");
    let _ = writeln!(gather, "#SBATCH --time={}", s.time);
    if let Some(p) = &s.partition {
        let _ = writeln!(gather, "#SBATCH --partition={p}");
    }
    let _ = writeln!(gather, "#SBATCH --output={}/gather.out", dir.display());
    let _ = writeln!(gather, "#SBATCH --chdir={}", root.display());
    let _ = writeln!(
        gather,
        "exec {} sweep gather {}",
        quote(binary),
        quote(root)
    );
    let scripts = Scripts {
        array: dir.join("array.sbatch"),
        gather: dir.join("gather.sbatch"),
    };
    for (path, text) in [(&scripts.array, array), (&scripts.gather, gather)] {
        std::fs::write(path, text).map_err(|source| SweepError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(scripts)
}

/// `sbatch --parsable` prints `jobid` or `jobid;cluster`.
fn parse_job_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_owned())
}

fn sbatch(args: &[&str], script: &Path) -> Result<String, SweepError> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .map_err(|e| {
            SweepError::Slurm(format!(
                "cannot run sbatch ({e}): is Slurm installed and on PATH? (a one-node cluster: \
             scripts/slurm-single-node.sh start)"
            ))
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(SweepError::Slurm(format!(
            "sbatch {} refused it: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_job_id(&stdout)
        .ok_or_else(|| SweepError::Slurm(format!("sbatch printed no job id: {:?}", stdout.trim())))
}

/// Submits the array, then the gather job after it.
pub fn submit(scripts: &Scripts) -> Result<Submitted, SweepError> {
    let array_job = sbatch(&[], &scripts.array)?;
    let dependency = format!("--dependency=afterany:{array_job}");
    let gather_job = sbatch(&[&dependency], &scripts.gather)?;
    Ok(Submitted {
        array_job,
        gather_job,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_job_id;

    #[test]
    fn sbatch_parsable_output() {
        for (text, want) in [
            ("1234\n", Some("1234")),
            ("1234;cluster\n", Some("1234")),
            ("", None),
            ("Submitted batch job 5\n", None),
        ] {
            assert_eq!(parse_job_id(text).as_deref(), want, "{text:?}");
        }
    }
}
