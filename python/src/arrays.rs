//! numpy arrays in and out: every array checked (dtype, shape, finiteness) before it reaches the
//! engine.

use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use rssm::data::FRAME_LEN;
use rssm::model::StepMetrics;

pub(crate) fn shape_str(shape: &[usize]) -> String {
    match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `obj` as a numpy array (lists and scalars go through `numpy.asarray`).
pub(crate) fn as_array<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, numpy::PyUntypedArray>> {
    if let Ok(a) = obj.cast::<numpy::PyUntypedArray>() {
        return Ok(a.clone());
    }
    let np = obj.py().import("numpy")?;
    let a = np.call_method1("asarray", (obj,))?;
    Ok(a.cast_into::<numpy::PyUntypedArray>()?)
}

pub(crate) fn dtype_name(a: &Bound<'_, numpy::PyUntypedArray>) -> String {
    a.dtype().to_string()
}

/// An array's dtype kind: 'b', 'i', 'u', 'f', ...
pub(crate) fn dtype_kind(a: &Bound<'_, numpy::PyUntypedArray>) -> char {
    a.dtype().kind() as char
}

/// The first non-finite value's index, as a tuple string.
pub(crate) fn first_non_finite(data: &[f32], shape: &[usize]) -> Option<String> {
    let i = data.iter().position(|v| !v.is_finite())?;
    let mut rem = i;
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = rem % shape[d].max(1);
        rem /= shape[d].max(1);
    }
    Some(format!("{} at index {}", data[i], shape_str(&idx)))
}

/// A numeric array as f32 values in C order, with its shape; `expected` (None: any size)
/// is checked, and every value must be finite.
pub(crate) fn float_array(
    obj: &Bound<'_, PyAny>,
    name: &str,
    expected: &[Option<usize>],
    what: &str,
) -> PyResult<(Vec<f32>, Vec<usize>)> {
    let a = as_array(obj)?;
    let shape = a.shape().to_vec();
    let fits = shape.len() == expected.len()
        && shape
            .iter()
            .zip(expected)
            .all(|(s, e)| e.is_none_or(|e| e == *s));
    let kind = dtype_kind(&a);
    if !fits || !matches!(kind, 'b' | 'i' | 'u' | 'f') {
        return Err(PyValueError::new_err(format!(
            "{name}: expected a float array of shape {what}, got {} array of shape {}",
            dtype_name(&a),
            shape_str(&shape)
        )));
    }
    let f32a = a.call_method1("astype", ("float32",))?;
    let ro: PyReadonlyArrayDyn<'_, f32> = f32a.extract()?;
    let data = ro.as_array().iter().copied().collect::<Vec<f32>>();
    if let Some(bad) = first_non_finite(&data, &shape) {
        return Err(PyValueError::new_err(format!(
            "{name}: values must be finite, found {bad} (shape {})",
            shape_str(&shape)
        )));
    }
    Ok((data, shape))
}

/// A uint8 array of the given exact shape, in C order.
pub(crate) fn u8_array(
    obj: &Bound<'_, PyAny>,
    name: &str,
    expected: &[usize],
    hint: &str,
) -> PyResult<Vec<u8>> {
    let a = as_array(obj)?;
    let shape = a.shape().to_vec();
    if shape != expected || dtype_kind(&a) != 'u' || dtype_name(&a) != "uint8" {
        return Err(PyValueError::new_err(format!(
            "{name}: expected a uint8 array of shape {}{hint}, got {} array of shape {}",
            shape_str(expected),
            dtype_name(&a),
            shape_str(&shape)
        )));
    }
    let ro: PyReadonlyArrayDyn<'_, u8> = a.extract()?;
    Ok(ro.as_array().iter().copied().collect())
}

/// Observations of a batch: uint8 `[B, T, 64, 64, 3]` (HWC frames, as environments give
/// them) or float `[B, T, 3, 64, 64]` in [-0.5, 0.5] (the engine's layout, `rssm evaluate`'s
/// `obs`). Returns CHW values `u8 / 255 - 0.5` and `(B, T)`.
pub(crate) fn batch_obs(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<(Vec<f32>, usize, usize)> {
    let a = as_array(obj)?;
    let shape = a.shape().to_vec();
    let bad = || {
        PyValueError::new_err(format!(
            "{name}: expected a uint8 array of shape (B, T, 64, 64, 3) or a float array of shape (B, T, 3, 64, 64) in [-0.5, 0.5], got {} array of shape {}",
            dtype_name(&a),
            shape_str(&shape)
        ))
    };
    if shape.len() != 5 || shape[0] == 0 || shape[1] == 0 {
        return Err(bad());
    }
    let (b, t) = (shape[0], shape[1]);
    if dtype_name(&a) == "uint8" && shape[2..] == [64, 64, 3] {
        let ro: PyReadonlyArrayDyn<'_, u8> = a.extract()?;
        let hwc: Vec<u8> = ro.as_array().iter().copied().collect();
        let mut chw = vec![0f32; hwc.len()];
        for (src, dst) in hwc
            .chunks_exact(FRAME_LEN)
            .zip(chw.chunks_exact_mut(FRAME_LEN))
        {
            rssm::data::frame_to_chw(src, dst).map_err(|e| PyValueError::new_err(e.to_string()))?;
        }
        return Ok((chw, b, t));
    }
    if dtype_kind(&a) == 'f' && shape[2..] == [3, 64, 64] {
        let (data, _) = float_array(
            obj,
            name,
            &[Some(b), Some(t), Some(3), Some(64), Some(64)],
            "",
        )?;
        if let Some(v) = data.iter().find(|v| v.abs() > 0.5 + 1e-6) {
            return Err(PyValueError::new_err(format!(
                "{name}: float observations must lie in [-0.5, 0.5] (u8 / 255 - 0.5), found {v}"
            )));
        }
        return Ok((data, b, t));
    }
    Err(bad())
}

/// One 64x64x3 uint8 frame.
pub(crate) fn frame(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u8>> {
    u8_array(
        obj,
        name,
        &[64, 64, 3],
        " (an RGB frame; resize larger renders first, see examples/python)",
    )
}

pub(crate) fn to_numpy<'py>(
    py: Python<'py>,
    data: Vec<f32>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, data)
        .reshape(shape.to_vec())?
        .into_any())
}

/// Decoded images `[B, T, 3, 64, 64]` in [-0.5, 0.5] as uint8 frames `[B, T, 64, 64, 3]`.
pub(crate) fn to_frames<'py>(
    py: Python<'py>,
    chw: &[f32],
    b: usize,
    t: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let plane = 64 * 64;
    let mut out = vec![0u8; chw.len()];
    for (src, dst) in chw
        .chunks_exact(FRAME_LEN)
        .zip(out.chunks_exact_mut(FRAME_LEN))
    {
        for i in 0..plane {
            for c in 0..3 {
                let v = (src[c * plane + i] + 0.5) * 255.0;
                dst[i * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(PyArray1::from_vec(py, out)
        .reshape(vec![b, t, 64, 64, 3])?
        .into_any())
}

pub(crate) fn metrics_dict<'py>(py: Python<'py>, m: &StepMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("step", m.step)?;
    d.set_item("loss", m.loss)?;
    d.set_item("image_nll", m.image_nll)?;
    d.set_item("reward_nll", m.reward_nll)?;
    d.set_item("cont_nll", m.cont_nll)?;
    d.set_item("kl", m.kl)?;
    d.set_item("kl_loss", m.kl_loss)?;
    d.set_item("grad_norm", m.grad_norm)?;
    Ok(d)
}
