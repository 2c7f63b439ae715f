//! Weight store: safetensors in, every tensor checked by name and shape against the config.
//!
//! Names follow fnn's `Visual.state_dict()` (e.g. `core.recurrent.proj_i.weights.2`), minus
//! buffers the twin derives itself (retina grid, inter-group masks). Loading is strict: a missing
//! tensor, a wrong shape, or a tensor nobody asked for is an error naming that tensor.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{CandleContext, ModelError, Result};

/// Named f32 tensors on the CPU, with a record of which names were taken.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    taken: RefCell<BTreeSet<String>>,
    /// When set, absent tensors are synthesised (benchmarks, shape listings): LCG state.
    synth: Option<RefCell<u64>>,
    /// Elements synthesised so far.
    synth_elements: RefCell<usize>,
    /// The synthesised tensors, by name (a fit's starting point).
    made: RefCell<HashMap<String, Tensor>>,
}

/// A plausible value for a synthesised tensor: fnn's init conventions, plus small noise.
fn synth_value(name: &str, state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let u = ((*state >> 40) as f32) / (1u64 << 24) as f32 - 0.5; // [-0.5, 0.5)
    if name.ends_with("monitor_pixel.power") {
        1.7
    } else if name.ends_with("retina_pixel.scale") {
        4.0
    } else if name.ends_with("retina_pixel.offset") {
        -1.4
    } else if name.ends_with("monitor_pixel.scale") {
        1.0
    } else if name.ends_with("monitor_pixel.offset") {
        // Negative pixels would make the retina's fractional power NaN.
        0.0
    } else if name.contains(".gains.") || name.contains(".scales.") {
        1.0 + 0.2 * u
    } else if name.contains("monitor.center") || name.contains("monitor.angle") {
        0.0
    } else {
        u
    }
}

impl Weights {
    /// Wraps tensors already in memory (any device; they are moved to the CPU).
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> Result<Self> {
        let mut out = HashMap::with_capacity(tensors.len());
        for (name, t) in tensors {
            if t.dtype() != DType::F32 {
                return Err(ModelError::BadDtype {
                    name,
                    dtype: format!("{:?}", t.dtype()),
                });
            }
            let t = t.to_device(&Device::Cpu).ctx(&name)?;
            out.insert(name, t);
        }
        Ok(Self {
            tensors: out,
            taken: RefCell::new(BTreeSet::new()),
            synth: None,
            synth_elements: RefCell::new(0),
            made: RefCell::new(HashMap::new()),
        })
    }

    /// Wraps a fit's parameters where they live (no copy to the CPU), so the model built from
    /// them stays on the autodiff graph of its variables.
    pub fn from_params(tensors: HashMap<String, Tensor>) -> Self {
        Self {
            tensors,
            taken: RefCell::new(BTreeSet::new()),
            synth: None,
            synth_elements: RefCell::new(0),
            made: RefCell::new(HashMap::new()),
        }
    }

    /// Writes named f32 tensors as safetensors (what [`Weights::load`] reads).
    pub fn save(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
        candle_core::safetensors::save(tensors, path).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Named f32 tensors as safetensors bytes, with `metadata` in the header (what
    /// [`Weights::from_bytes`] reads; [`Weights::metadata`] gives the metadata back). For
    /// writers that place the file themselves (atomically).
    pub fn to_bytes(
        tensors: &HashMap<String, Tensor>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<u8>> {
        let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        safetensors::serialize(sorted, Some(metadata)).map_err(|e| ModelError::Safetensors {
            path: std::path::PathBuf::from("<in memory>"),
            reason: e.to_string(),
        })
    }

    /// The header's metadata of safetensors `bytes` (empty when it has none) and the offset at
    /// which the tensor data begins; the error names `origin`.
    pub fn metadata(bytes: &[u8], origin: &Path) -> Result<(HashMap<String, String>, usize)> {
        let (n, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
            ModelError::Safetensors {
                path: origin.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        // The header is an 8-byte length, then that many bytes of JSON.
        Ok((meta.metadata().clone().unwrap_or_default(), 8 + n))
    }

    /// Reads a safetensors file of f32 tensors.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses safetensors bytes of f32 tensors (`origin` names them in errors: a file, or the
    /// weights embedded in the binary).
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        let path = origin;
        let st =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(ModelError::BadDtype {
                    name,
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            // A NaN weight makes every output NaN with no error anywhere after it: refuse it
            // here, where the file and tensor can still be named.
            if let Some(index) = data.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::NonFinite {
                    path: path.to_path_buf(),
                    value: data[index],
                    name,
                    index,
                });
            }
            let t = Tensor::from_vec(data, view.shape(), &Device::Cpu).ctx(&name)?;
            tensors.insert(name, t);
        }
        Self::from_tensors(tensors)
    }

    /// An empty store that invents every tensor asked of it (deterministic from `seed`), for
    /// benchmarks and shape listings. Not for predictions.
    pub fn synthetic(seed: u64) -> Self {
        Self {
            tensors: HashMap::new(),
            taken: RefCell::new(BTreeSet::new()),
            synth: Some(RefCell::new(seed)),
            synth_elements: RefCell::new(0),
            made: RefCell::new(HashMap::new()),
        }
    }

    /// Names and shapes taken so far (after building a model: the full weight spec).
    pub fn taken(&self) -> Vec<String> {
        self.taken.borrow().iter().cloned().collect()
    }

    /// Number of scalars synthesised (after building a model: its parameter count).
    pub fn synthesised_elements(&self) -> usize {
        *self.synth_elements.borrow()
    }

    fn synthesise(&self, name: &str, shape: &[usize]) -> Option<Tensor> {
        let synth = self.synth.as_ref()?;
        let mut st = synth.borrow_mut();
        let n: usize = shape.iter().product();
        *self.synth_elements.borrow_mut() += n;
        let mut data: Vec<f32> = (0..n).map(|_| synth_value(name, &mut st)).collect();
        if name.ends_with("monitor.center") && n == 3 {
            data[2] = 0.5;
        }
        let t = Tensor::from_vec(data, shape, &Device::Cpu).ok()?;
        self.made.borrow_mut().insert(name.to_string(), t.clone());
        Some(t)
    }

    /// The tensors synthesised so far, by name: after building a model on a synthetic store,
    /// a complete weight set to start a fit from.
    pub fn synthesised(&self) -> HashMap<String, Tensor> {
        self.made.borrow().clone()
    }

    /// Takes the tensor `name`, checking its shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        if !self.tensors.contains_key(name)
            && let Some(t) = self.synthesise(name, shape)
        {
            self.taken.borrow_mut().insert(name.to_string());
            return Ok(t);
        }
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
            })?;
        if t.dims() != shape {
            return Err(ModelError::ShapeMismatch {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        self.taken.borrow_mut().insert(name.to_string());
        Ok(t.clone())
    }

    /// Takes a scalar tensor (shape `[]` or `[1]`) as f32.
    pub fn scalar(&self, name: &str) -> Result<f32> {
        if !self.tensors.contains_key(name)
            && let Some(t) = self.synthesise(name, &[])
        {
            self.taken.borrow_mut().insert(name.to_string());
            return t.to_scalar::<f32>().ctx(name);
        }
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
            })?;
        if t.elem_count() != 1 || t.rank() > 1 {
            return Err(ModelError::ShapeMismatch {
                name: name.to_string(),
                expected: vec![1],
                found: t.dims().to_vec(),
            });
        }
        self.taken.borrow_mut().insert(name.to_string());
        let v = t.flatten_all().ctx(name)?.to_vec1::<f32>().ctx(name)?;
        Ok(v[0])
    }

    /// Errors if any tensor in the file was not taken by the model.
    pub fn check_all_used(&self) -> Result<()> {
        let taken = self.taken.borrow();
        let mut unused: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| !taken.contains(*k))
            .collect();
        unused.sort();
        match unused.first() {
            None => Ok(()),
            Some(first) => Err(ModelError::UnusedTensors {
                count: unused.len(),
                first: (*first).clone(),
            }),
        }
    }

    /// Shape of a stored tensor without taking it.
    pub fn dims(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.dims().to_vec())
    }

    /// A copy of the stored tensors (cheap: candle tensors share storage).
    pub fn to_map(&self) -> HashMap<String, Tensor> {
        self.tensors.clone()
    }

    /// Names in the store, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tensors.keys().cloned().collect();
        v.sort();
        v
    }
}
