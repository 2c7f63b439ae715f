//! The Python values suite2p's files hold: numbers, strings, lists, dicts and numpy arrays.

/// A Python value, as far as suite2p's `stat.npy` and `ops.npy` need.
#[derive(Clone, Debug, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `list`.
    List(Vec<PyValue>),
    /// `dict` with string keys, in insertion order.
    Dict(Vec<(String, PyValue)>),
    /// A numpy array.
    Array(NdArray),
}

/// A C-ordered numpy array.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// Shape; empty for a 0-d array.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: ArrayData,
}

/// Elements of an [`NdArray`], with their dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// `bool`.
    Bool(Vec<bool>),
    /// `int32`.
    I32(Vec<i32>),
    /// `int64`.
    I64(Vec<i64>),
    /// `float32`.
    F32(Vec<f32>),
    /// `float64`.
    F64(Vec<f64>),
    /// `object` (pickled element by element).
    Object(Vec<PyValue>),
}

impl ArrayData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::Bool(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::Object(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// numpy's type string without byte order (`f4`, `O8`, ...) as `np.dtype` is reduced, and
    /// the byte-order character of the descr.
    pub(crate) fn dtype(&self) -> (&'static str, char) {
        match self {
            ArrayData::Bool(_) => ("b1", '|'),
            ArrayData::I32(_) => ("i4", '<'),
            ArrayData::I64(_) => ("i8", '<'),
            ArrayData::F32(_) => ("f4", '<'),
            ArrayData::F64(_) => ("f8", '<'),
            ArrayData::Object(_) => ("O8", '|'),
        }
    }

    /// The raw little-endian bytes of a numeric array (empty for objects).
    pub(crate) fn raw_bytes(&self) -> Vec<u8> {
        match self {
            ArrayData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
            ArrayData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::Object(_) => Vec::new(),
        }
    }
}

impl NdArray {
    /// A 1-d array.
    pub fn vector(data: ArrayData) -> NdArray {
        NdArray {
            shape: vec![data.len()],
            data,
        }
    }

    /// A 2-d array of `rows` x `cols` (`data` row-major).
    pub fn matrix(rows: usize, cols: usize, data: ArrayData) -> NdArray {
        debug_assert_eq!(rows * cols, data.len());
        NdArray {
            shape: vec![rows, cols],
            data,
        }
    }
}

impl From<NdArray> for PyValue {
    fn from(a: NdArray) -> PyValue {
        PyValue::Array(a)
    }
}
impl From<f64> for PyValue {
    fn from(v: f64) -> PyValue {
        PyValue::Float(v)
    }
}
impl From<i64> for PyValue {
    fn from(v: i64) -> PyValue {
        PyValue::Int(v)
    }
}
impl From<usize> for PyValue {
    fn from(v: usize) -> PyValue {
        PyValue::Int(v as i64)
    }
}
impl From<bool> for PyValue {
    fn from(v: bool) -> PyValue {
        PyValue::Bool(v)
    }
}
impl From<&str> for PyValue {
    fn from(v: &str) -> PyValue {
        PyValue::Str(v.to_string())
    }
}
