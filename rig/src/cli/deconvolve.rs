//! `twinloop deconvolve`: OASIS over a cells × frames `.npy` of dF/F traces, offline.
//!
//! ```text
//! twinloop deconvolve traces.npy --out spks.npy --ar 1 --tau 0.7 --fs 30 --lambda-noise 2
//! ```
//! The kernel comes from `--g`, from `--tau` and `--fs`, or (neither given) from each cell's
//! autocovariance; λ from `--lambda`, from `--lambda-noise Z` (λ = Z σ ‖h‖ per cell), or 0.
//! By default the exact offline solver runs (equal to `oasis-deconv`); `--max-lag N` replays the
//! frames through the online bank instead and writes its settled spikes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

use crate::stages::deconvolve::params::{
    estimate_ar, g_from_tau, g_from_taus, lambda_from_noise, noise_sigma,
};
use crate::stages::deconvolve::{
    Ar1Params, Ar2Params, BankConfig, DeconvolveBank, Params, deconvolve_trace,
};

/// Autocovariance lags used when estimating g from the data (OASIS's default).
const ESTIMATE_LAGS: usize = 10;

/// Deconvolve dF/F traces into spikes with OASIS (offline; equal to oasis-deconv).
#[derive(Debug, Clone, clap::Args)]
pub struct DeconvolveArgs {
    /// Input: cells × frames `.npy`, float32 or float64, C order, baseline-subtracted (dF/F).
    /// NaN/inf samples are treated as missing and come out as NaN.
    pub traces: PathBuf,
    /// Output: cells × frames float32 `.npy` of spikes.
    #[arg(long)]
    pub out: PathBuf,
    /// AR order of the indicator model: 1 (decay) or 2 (rise and decay).
    #[arg(long, default_value_t = 1)]
    pub ar: u8,
    /// AR coefficients for every cell: `G` for --ar 1, `G1,G2` for --ar 2.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub g: Option<Vec<f64>>,
    /// Indicator time constants in seconds: `DECAY` for --ar 1, `DECAY,RISE` for --ar 2 (needs --fs).
    #[arg(long, value_delimiter = ',')]
    pub tau: Option<Vec<f64>>,
    /// Frame rate in Hz, used with --tau.
    #[arg(long, value_name = "HZ")]
    pub fs: Option<f64>,
    /// Sparsity penalty λ, in the traces' units (default 0).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// λ per cell as Z noise standard deviations of the kernel's correlation (λ = Z σ ‖h‖).
    #[arg(long, value_name = "Z")]
    pub lambda_noise: Option<f64>,
    /// Minimal spike size s_min, in the traces' units.
    #[arg(long, default_value_t = 0.0)]
    pub smin: f64,
    /// Also write the denoised calcium (cells × frames float32 `.npy`; offline solver only).
    #[arg(long)]
    pub calcium: Option<PathBuf>,
    /// Replay frame by frame through the online bank, settling pools after N frames.
    #[arg(long, value_name = "N")]
    pub max_lag: Option<u32>,
    /// Write the parameters used for each cell (JSON).
    #[arg(long)]
    pub params_out: Option<PathBuf>,
}

/// Runs `twinloop deconvolve`.
pub fn run(args: &DeconvolveArgs) -> Result<()> {
    let started = Instant::now();
    let (ys, n_cells, n_frames) = read_traces(&args.traces)?;
    let cells: Vec<&[f64]> = if n_frames == 0 {
        vec![&[]; n_cells]
    } else {
        ys.chunks(n_frames).collect()
    };
    let params = cell_params(args, &cells)?;
    let (spikes, calcium) = match args.max_lag {
        None => {
            let traces: Vec<_> = cells
                .iter()
                .zip(&params)
                .map(|(y, p)| deconvolve_trace(y, &p.params))
                .collect();
            let calcium: Option<Vec<f32>> = args.calcium.is_some().then(|| {
                traces
                    .iter()
                    .flat_map(|t| t.c.iter().map(|&v| v as f32))
                    .collect()
            });
            (
                traces
                    .iter()
                    .flat_map(|t| t.s.iter().map(|&v| v as f32))
                    .collect::<Vec<f32>>(),
                calcium,
            )
        }
        Some(lag) => {
            ensure!(
                args.calcium.is_none(),
                "--calcium needs the offline solver: drop --max-lag or --calcium"
            );
            let ps: Vec<Params> = params.iter().map(|p| p.params).collect();
            (replay_online(&cells, &ps, lag)?, None)
        }
    };
    write_npy(&args.out, &spikes, n_cells, n_frames)?;
    if let (Some(path), Some(c)) = (&args.calcium, &calcium) {
        write_npy(path, c, n_cells, n_frames)?;
    }
    if let Some(path) = &args.params_out {
        let file = File::create(path)
            .with_context(|| format!("cannot create --params-out file {}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(file), &params)
            .with_context(|| format!("cannot write --params-out file {}", path.display()))?;
    }
    eprintln!(
        "deconvolved {n_cells} cells x {n_frames} frames (AR({}), {}) in {:.1} ms -> {}",
        args.ar,
        if args.max_lag.is_some() {
            "online"
        } else {
            "offline"
        },
        started.elapsed().as_secs_f64() * 1e3,
        args.out.display()
    );
    Ok(())
}

/// What one cell was deconvolved with.
#[derive(Debug, Clone, Serialize)]
struct CellParams {
    cell: usize,
    /// Noise estimate, when one was needed.
    sigma: Option<f64>,
    params: Params,
}

/// The model for every cell from the options, estimating g and σ from the data where asked.
fn cell_params(args: &DeconvolveArgs, cells: &[&[f64]]) -> Result<Vec<CellParams>> {
    let order = args.ar;
    ensure!(
        order == 1 || order == 2,
        "--ar {order} is not supported: use --ar 1 or --ar 2"
    );
    let want = if order == 1 {
        "one value"
    } else {
        "two values"
    };
    let fixed_g: Option<Vec<f64>> = match (&args.g, &args.tau) {
        (Some(_), Some(_)) => bail!("--g and --tau both give the kernel: keep one of them"),
        (Some(g), None) => {
            ensure!(
                g.len() == order as usize,
                "--g has {} value(s) but --ar {order} needs {want}: e.g. {}",
                g.len(),
                if order == 1 {
                    "--g 0.95"
                } else {
                    "--g 1.6,-0.63"
                }
            );
            Some(g.clone())
        }
        (None, Some(tau)) => {
            ensure!(
                tau.len() == order as usize,
                "--tau has {} value(s) but --ar {order} needs {want}: {}",
                tau.len(),
                if order == 1 {
                    "--tau DECAY_S"
                } else {
                    "--tau DECAY_S,RISE_S"
                }
            );
            let Some(fs) = args.fs else {
                bail!("--tau needs the frame rate: add --fs HZ")
            };
            Some(if order == 1 {
                vec![g_from_tau(tau[0], fs)?]
            } else {
                let (g1, g2) = g_from_taus(tau[0], tau[1], fs)?;
                vec![g1, g2]
            })
        }
        (None, None) => {
            ensure!(
                args.fs.is_none(),
                "--fs is only used with --tau: add --tau or drop --fs"
            );
            None
        }
    };
    if args.lambda.is_some() && args.lambda_noise.is_some() {
        bail!("--lambda and --lambda-noise both set λ: keep one of them");
    }
    let needs_sigma = fixed_g.is_none() || args.lambda_noise.is_some();
    cells
        .iter()
        .enumerate()
        .map(|(cell, y)| {
            let sigma = if needs_sigma {
                Some(noise_sigma(y).with_context(|| format!("cell {cell}"))?)
            } else {
                None
            };
            let g = match (&fixed_g, sigma) {
                (Some(g), _) => g.clone(),
                (None, sn) => {
                    let sn = match sn {
                        Some(sn) => sn,
                        None => noise_sigma(y).with_context(|| format!("cell {cell}"))?,
                    };
                    estimate_ar(y, order, sn, ESTIMATE_LAGS).with_context(|| {
                        format!("cell {cell}: give the kernel with --g or --tau/--fs")
                    })?
                }
            };
            let model = if order == 1 {
                Params::Ar1(
                    Ar1Params::new(g[0], 0.0, 0.0)
                        .with_context(|| format!("cell {cell}: bad --g/--tau"))?,
                )
            } else {
                Params::Ar2(Ar2Params::new(g[0], g[1], 0.0, 0.0).with_context(|| {
                    format!("cell {cell}: bad --g/--tau (AR(2) needs two decaying roots)")
                })?)
            };
            let lambda = match (args.lambda, args.lambda_noise, sigma) {
                (Some(l), _, _) => l,
                (None, Some(z), Some(sn)) => {
                    lambda_from_noise(sn, &model, z).context("--lambda-noise")?
                }
                _ => 0.0,
            };
            let params = model
                .with_penalties(lambda, args.smin)
                .context("--lambda / --smin must be finite and >= 0")?;
            Ok(CellParams {
                cell,
                sigma,
                params,
            })
        })
        .collect()
}

fn replay_online(cells: &[&[f64]], params: &[Params], max_lag: u32) -> Result<Vec<f32>> {
    let n = cells.len();
    let t = cells.first().map_or(0, |c| c.len());
    let mut bank = DeconvolveBank::new(
        params,
        BankConfig {
            max_lag: Some(max_lag),
            bridge_max_frames: 0,
        },
    )?;
    let (mut frame, mut prov, mut row) = (vec![0.0f64; n], vec![0.0f32; n], vec![0.0f32; n]);
    let mut out = vec![f32::NAN; n * t];
    let mut drain = |bank: &mut DeconvolveBank, out: &mut [f32]| -> Result<()> {
        while let Some(f) = bank.pop_settled(&mut row)? {
            for (c, v) in row.iter().enumerate() {
                out[c * t + f as usize] = *v;
            }
        }
        Ok(())
    };
    for k in 0..t {
        for (f, y) in frame.iter_mut().zip(cells) {
            *f = y[k];
        }
        bank.push_frame(&frame, &mut prov)?;
        drain(&mut bank, &mut out)?;
    }
    bank.flush();
    drain(&mut bank, &mut out)?;
    Ok(out)
}

/// Reads a cells × frames float32/float64 C-order `.npy` into f64 (row-major).
fn read_traces(path: &Path) -> Result<(Vec<f64>, usize, usize)> {
    let file =
        File::open(path).with_context(|| format!("cannot open traces file {}", path.display()))?;
    let mut bytes = Vec::new();
    BufReader::new(file)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    // npyz multiplies the header's dimensions unchecked: refuse an impossible claim first.
    crate::vocab::npy::check_claimed_size(path, bytes.len() as u64, &bytes)?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .with_context(|| format!("{} is not a valid .npy file", path.display()))?;
    let shape = npy.shape().to_vec();
    ensure!(
        shape.len() == 2,
        "{} has shape {shape:?}; expected a 2-D cells x frames array (for one trace save it as shape (1, T))",
        path.display()
    );
    ensure!(
        npy.order() == npyz::Order::C,
        "{} is Fortran-ordered; save it in C order (np.save(path, np.ascontiguousarray(x)))",
        path.display()
    );
    let (n_cells, n_frames) = (usize::try_from(shape[0])?, usize::try_from(shape[1])?);
    // A header may claim any shape: check it against the bytes the file holds before a
    // buffer of that size is asked for, so (2^40, 2^40) is an error, not a wrap or an abort.
    let values = n_cells.checked_mul(n_frames);
    let item = npy.dtype().num_bytes().unwrap_or(8);
    if values
        .and_then(|v| v.checked_mul(item))
        .is_none_or(|b| b > bytes.len())
    {
        bail!(
            "{}: its header claims {n_cells} x {n_frames} values but the file holds {} bytes; \
             the file is truncated or its header is damaged",
            path.display(),
            bytes.len()
        );
    }
    let dtype = npy.dtype();
    let type_str = match &dtype {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => bail!(
            "{} has dtype {other:?}; expected float32 or float64",
            path.display()
        ),
    };
    let ys: Vec<f64> = match type_str.trim_start_matches(['<', '>', '|', '=']) {
        "f8" => npy
            .into_vec::<f64>()
            .with_context(|| format!("cannot read the values of {}", path.display()))?,
        "f4" => npy
            .into_vec::<f32>()
            .with_context(|| format!("cannot read the values of {}", path.display()))?
            .into_iter()
            .map(f64::from)
            .collect(),
        _ => bail!(
            "{} has dtype {type_str}; expected float32 or float64 (convert with x.astype(np.float32))",
            path.display()
        ),
    };
    ensure!(
        Some(ys.len()) == values,
        "{} holds {} values, its header says {n_cells} x {n_frames}",
        path.display(),
        ys.len()
    );
    Ok((ys, n_cells, n_frames))
}

fn write_npy(path: &Path, data: &[f32], n_cells: usize, n_frames: usize) -> Result<()> {
    use npyz::WriterBuilder;
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let write = || -> std::io::Result<()> {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[n_cells as u64, n_frames as u64])
            .writer(BufWriter::new(file))
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> DeconvolveArgs {
        DeconvolveArgs {
            traces: dir.join("in.npy"),
            out: dir.join("out.npy"),
            ar: 1,
            g: None,
            tau: None,
            fs: None,
            lambda: None,
            lambda_noise: None,
            smin: 0.0,
            calcium: None,
            max_lag: None,
            params_out: None,
        }
    }

    fn save<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
        path: &Path,
        data: &[T],
        shape: &[u64],
    ) {
        use npyz::WriterBuilder;
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(File::create(path).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
    }

    fn load_f32(path: &Path) -> (Vec<u64>, Vec<f32>) {
        let bytes = std::fs::read(path).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        (npy.shape().to_vec(), npy.into_vec().unwrap())
    }

    fn traces(n: usize, t: usize) -> Vec<f32> {
        let mut state = 5u64;
        let mut c = vec![0.0f32; n];
        let mut out = vec![0.0; n * t];
        for k in 0..t {
            for i in 0..n {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                c[i] = 0.95 * c[i] + if u < 0.04 { 1.0 } else { 0.0 };
                out[i * t + k] = c[i] + 0.1 * (u - 0.5);
            }
        }
        out
    }

    #[test]
    fn writes_float32_spikes_of_the_input_shape() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        save(&a.traces, &traces(3, 500), &[3, 500]);
        (a.tau, a.fs, a.lambda, a.calcium) = (
            Some(vec![0.65]),
            Some(30.0),
            Some(0.05),
            Some(dir.path().join("c.npy")),
        );
        run(&a).unwrap();
        let (shape, s) = load_f32(&a.out);
        assert_eq!(shape, vec![3, 500]);
        assert!(s.iter().all(|v| v.is_finite() && *v >= 0.0) && s.iter().any(|v| *v > 0.5));
        assert_eq!(load_f32(&dir.path().join("c.npy")).0, vec![3, 500]);
        // Estimated kernel, AR(2), online replay, float64 input.
        let y64: Vec<f64> = traces(2, 400).into_iter().map(f64::from).collect();
        save(&a.traces, &y64, &[2, 400]);
        (a.tau, a.fs, a.lambda, a.lambda_noise, a.calcium, a.max_lag) =
            (None, None, None, Some(1.0), None, Some(60));
        a.params_out = Some(dir.path().join("p.json"));
        run(&a).unwrap();
        assert_eq!(load_f32(&a.out).0, vec![2, 400]);
        let p: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("p.json")).unwrap()).unwrap();
        assert_eq!(p.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn errors_name_the_option_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path());
        let e = run(&a).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot open traces file"),
            "{e:#}"
        );
        save(&a.traces, &[1.0f64, 2.0, 3.0], &[3]);
        let e = run(&a).unwrap_err();
        assert!(
            format!("{e:#}").contains("expected a 2-D cells x frames"),
            "{e:#}"
        );
        save(&a.traces, &[1i32, 2, 3, 4], &[2, 2]);
        let e = run(&a).unwrap_err();
        assert!(
            format!("{e:#}").contains("expected float32 or float64"),
            "{e:#}"
        );
        save(&a.traces, &traces(1, 300), &[1, 300]);
        type Setter = Box<dyn Fn(&mut DeconvolveArgs)>;
        let cases: Vec<(Setter, &str)> = vec![
            (Box::new(|a| a.tau = Some(vec![0.5])), "add --fs HZ"),
            (
                Box::new(|a| (a.tau, a.g) = (Some(vec![0.5]), Some(vec![0.9]))),
                "keep one of them",
            ),
            (
                Box::new(|a| (a.ar, a.g) = (2, Some(vec![0.9]))),
                "--g 1.6,-0.63",
            ),
            (
                Box::new(|a| a.fs = Some(30.0)),
                "--fs is only used with --tau",
            ),
            (
                Box::new(|a| {
                    (a.g, a.lambda, a.lambda_noise) = (Some(vec![0.9]), Some(1.0), Some(2.0))
                }),
                "--lambda and --lambda-noise",
            ),
            (
                Box::new(|a| (a.g, a.smin) = (Some(vec![0.9]), -1.0)),
                "s_min",
            ),
            (Box::new(|a| a.g = Some(vec![1.5])), "g = 1.5"),
            (Box::new(|a| a.ar = 3), "use --ar 1 or --ar 2"),
        ];
        for (set, want) in cases {
            let mut b = args(dir.path());
            set(&mut b);
            let e = format!("{:#}", run(&b).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
    }

    /// A header claiming (2^40, 2^40) used to exit 0 and write a file numpy cannot load (#16):
    /// it is refused, naming the file, before anything that size is allocated; a truncated
    /// file's read error names the file too.
    #[test]
    fn a_header_that_claims_more_than_the_file_holds_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path());
        save(&a.traces, &traces(2, 100), &[2, 100]);
        let good = std::fs::read(&a.traces).unwrap();
        let end = good.iter().position(|&b| b == b'\n').unwrap() + 1;
        // The same data under a hand-written version 1.0 header claiming `shape`.
        let forge = |shape: &str| {
            let mut text =
                format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            while (10 + text.len() + 1) % 64 != 0 {
                text.push(' ');
            }
            text.push('\n');
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
            bytes.extend_from_slice(text.as_bytes());
            bytes.extend_from_slice(&good[end..]);
            bytes
        };
        // The forgery itself is sound: the true shape reads back.
        std::fs::write(&a.traces, forge("(2, 100)")).unwrap();
        assert_eq!(read_traces(&a.traces).unwrap().1, 2);
        for claim in ["(1099511627776, 1099511627776)", "(2, 1000)"] {
            let bytes = forge(claim);
            std::fs::write(&a.traces, &bytes).unwrap();
            let e = format!("{:#}", run(&a).unwrap_err());
            assert!(
                e.contains(&a.traces.display().to_string()) && e.contains("truncated"),
                "{claim}: {e}"
            );
            assert!(!a.out.exists(), "{claim}: nothing written");
        }
    }
}
