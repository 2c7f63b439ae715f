//! The few HDF5 shapes NWB is built from, on `hdf5-metno`: typed groups and datasets (each with
//! `neurodata_type`, `namespace` and a UUID4 `object_id`), variable-length UTF-8 text (what
//! pynwb writes and reads back as `str`), object references, soft links, and the column kinds of
//! hdmf's `DynamicTable`.

use hdf5_metno::types::VarLenUnicode;
use hdf5_metno::{Dataset, Group, H5Type, Location, ObjectReference1};
use ndarray::{ArrayView, Dimension};

pub use hdf5_metno::Error;
pub type Result<T> = std::result::Result<T, Error>;

/// NWB's core namespace (`NWBFile`, `TimeSeries`, ...).
pub const CORE: &str = "core";
/// hdmf-common's namespace (`DynamicTable`, `VectorData`, ...).
pub const HDMF: &str = "hdmf-common";

/// Any other failure (reading the log, shaping an array) as an HDF5-layer error.
pub fn other(e: impl std::fmt::Display) -> Error {
    Error::from(e.to_string().as_str())
}

pub fn text(s: &str) -> Result<VarLenUnicode> {
    // Only an interior NUL is refused; NWB text never needs one.
    s.replace('\0', " ").parse::<VarLenUnicode>().map_err(other)
}

/// A fresh UUID version 4 as text, NWB's `object_id`.
pub fn uuid4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn attr_text(loc: &Location, name: &str, value: &str) -> Result<()> {
    loc.new_attr::<VarLenUnicode>()
        .create(name)?
        .write_scalar(&text(value)?)
}

pub fn attr_texts(loc: &Location, name: &str, values: &[&str]) -> Result<()> {
    let v = values.iter().map(|s| text(s)).collect::<Result<Vec<_>>>()?;
    loc.new_attr_builder()
        .with_data(v.as_slice())
        .create(name)?;
    Ok(())
}

pub fn attr<T: H5Type>(loc: &Location, name: &str, value: T) -> Result<()> {
    loc.new_attr::<T>().create(name)?.write_scalar(&value)
}

/// An attribute holding an object reference to `target` (an absolute path in the file).
pub fn attr_ref(loc: &Location, name: &str, target: &str) -> Result<()> {
    let r: ObjectReference1 = loc.reference(target)?;
    loc.new_attr::<ObjectReference1>()
        .create(name)?
        .write_scalar(&r)
}

/// Marks `loc` as an NWB/hdmf object of `neurodata_type` in `namespace`.
pub fn typed(loc: &Location, neurodata_type: &str, namespace: &str) -> Result<()> {
    attr_text(loc, "neurodata_type", neurodata_type)?;
    attr_text(loc, "namespace", namespace)?;
    attr_text(loc, "object_id", &uuid4())
}

/// A new group, typed when `ty` is given.
pub fn group(parent: &Group, name: &str, ty: Option<(&str, &str)>) -> Result<Group> {
    let g = parent.create_group(name)?;
    if let Some((t, ns)) = ty {
        typed(&g, t, ns)?;
    }
    Ok(g)
}

/// A scalar text dataset.
pub fn text_scalar(parent: &Group, name: &str, value: &str) -> Result<Dataset> {
    let ds = parent.new_dataset::<VarLenUnicode>().create(name)?;
    ds.write_scalar(&text(value)?)?;
    Ok(ds)
}

/// A 1-D text dataset.
pub fn text_array<S: AsRef<str>>(parent: &Group, name: &str, values: &[S]) -> Result<Dataset> {
    let v = values
        .iter()
        .map(|s| text(s.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    parent
        .new_dataset_builder()
        .with_data(v.as_slice())
        .create(name)
}

pub fn scalar<T: H5Type>(parent: &Group, name: &str, value: T) -> Result<Dataset> {
    let ds = parent.new_dataset::<T>().create(name)?;
    ds.write_scalar(&value)?;
    Ok(ds)
}

/// A dataset of any shape.
pub fn array<'a, T: H5Type, D: Dimension>(
    parent: &Group,
    name: &str,
    data: ArrayView<'a, T, D>,
) -> Result<Dataset> {
    parent.new_dataset_builder().with_data(data).create(name)
}

/// A column of a `DynamicTable`.
pub enum Column<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
    Text(&'a [String]),
    /// A 2-D column, row-major values of `width` per row (a vector per row).
    F64Rows(&'a [f64], usize),
    F32Rows(&'a [f32], usize),
    /// A `DynamicTableRegion`: row indices into the table at this absolute path.
    Region(&'a [i64], &'a str),
}

/// hdmf's `DynamicTable` of `rows` rows in `g` (already created and typed by the caller as the
/// table's own type): `description`, `colnames`, `id` and one `VectorData` per column.
pub fn dynamic_table(
    g: &Group,
    description: &str,
    rows: usize,
    columns: &[(&str, &str, Column<'_>)],
    extra_colnames: &[&str],
) -> Result<()> {
    attr_text(g, "description", description)?;
    let mut names: Vec<&str> = columns.iter().map(|(n, _, _)| *n).collect();
    names.extend_from_slice(extra_colnames);
    attr_texts(g, "colnames", &names)?;
    let ids: Vec<i64> = (0..rows as i64).collect();
    let id = g
        .new_dataset_builder()
        .with_data(ids.as_slice())
        .create("id")?;
    typed(&id, "ElementIdentifiers", HDMF)?;
    for (name, description, column) in columns {
        let ds = match column {
            Column::F64(v) => g.new_dataset_builder().with_data(*v).create(*name)?,
            Column::I64(v) => g.new_dataset_builder().with_data(*v).create(*name)?,
            Column::Text(v) => text_array(g, name, v)?,
            Column::F64Rows(v, width) => array(g, name, rows_view(v, rows, *width)?)?,
            Column::F32Rows(v, width) => array(g, name, rows_view(v, rows, *width)?)?,
            Column::Region(v, table) => {
                let ds = g.new_dataset_builder().with_data(*v).create(*name)?;
                typed(&ds, "DynamicTableRegion", HDMF)?;
                attr_text(&ds, "description", description)?;
                attr_ref(&ds, "table", table)?;
                continue;
            }
        };
        vector_data(&ds, description)?;
    }
    Ok(())
}

/// `values` as `rows` x `width`, or an error saying the column does not fit the table.
fn rows_view<T>(values: &[T], rows: usize, width: usize) -> Result<ndarray::ArrayView2<'_, T>> {
    ndarray::ArrayView2::from_shape((rows, width), values).map_err(|e| {
        other(format!(
            "a {rows} x {width} column holds {} values: {e}",
            values.len()
        ))
    })
}

/// Marks a dataset as a `VectorData` column.
pub fn vector_data(ds: &Dataset, description: &str) -> Result<()> {
    typed(ds, "VectorData", HDMF)?;
    attr_text(ds, "description", description)
}
