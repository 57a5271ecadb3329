//! Checkpoint tensors read with positioned file reads instead of a memory
//! map. Every page of a map that loading touches stays resident (and counts
//! against the process) until the map is dropped, on top of the copy the
//! model keeps: a float checkpoint peaked at twice its size, and a quantised
//! load still held the whole float checkpoint. Reads leave those pages in the
//! kernel's page cache, which the kernel reclaims as it needs.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Result, Shape, Tensor, WithDType};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::Init;
use serde_json::Value;

use super::ModelError;

struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute byte offset of the data in the file.
    offset: u64,
}

pub struct TensorReader {
    files: Vec<(PathBuf, File)>,
    entries: HashMap<String, Entry>,
}

impl TensorReader {
    /// Reads the headers of `paths`; the data stays on disk until asked for.
    pub fn open(paths: &[PathBuf]) -> std::result::Result<Self, ModelError> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = HashMap::new();
        for (index, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| bad(path, format!("cannot open it: {e}")))?;
            let size = file
                .metadata()
                .map_err(|e| bad(path, format!("cannot read its size: {e}")))?
                .len();
            add_entries(path, &file, size, index, &mut entries)?;
            files.push((path.clone(), file));
        }
        Ok(TensorReader { files, entries })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    fn read(&self, name: &str) -> Result<Tensor> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.into() }.bt())?;
        let (path, file) = &self.files[entry.file];
        let count: usize = entry.shape.iter().product();
        let read = |e: std::io::Error| {
            candle_core::Error::Msg(format!("{}: cannot read {name}: {e}", path.display()))
        };
        match entry.dtype {
            DType::F32 => read_as::<f32>(file, entry, count).map_err(read),
            DType::BF16 => read_as::<half::bf16>(file, entry, count).map_err(read),
            DType::F16 => read_as::<half::f16>(file, entry, count).map_err(read),
            dtype => {
                let mut bytes = vec![0u8; count * dtype.size_in_bytes()];
                file.read_exact_at(&mut bytes, entry.offset).map_err(read)?;
                Tensor::from_raw_buffer(&bytes, dtype, &entry.shape, &Device::Cpu)
            }
        }
    }
}

/// Reads straight into the tensor's own buffer: no second copy of the bytes.
fn read_as<T: WithDType + Copy + Default>(
    file: &File,
    entry: &Entry,
    count: usize,
) -> std::io::Result<Tensor> {
    let mut values = vec![T::default(); count];
    // SAFETY: the float types read here have no invalid bit patterns and no
    // padding, and safetensors stores them little-endian, as this target is.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<u8>(),
            count * std::mem::size_of::<T>(),
        )
    };
    file.read_exact_at(bytes, entry.offset)?;
    Tensor::from_vec(values, entry.shape.as_slice(), &Device::Cpu).map_err(std::io::Error::other)
}

#[cfg(not(target_endian = "little"))]
compile_error!("safetensors data is little-endian; reading it assumes a little-endian target");

impl SimpleBackend for TensorReader {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _init: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &shape {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: shape,
                got: t.shape().clone(),
            }
            .bt());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.read(name)?.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}

fn bad(path: &Path, what: String) -> ModelError {
    ModelError::BadWeights {
        path: path.to_path_buf(),
        what,
    }
}

/// A safetensors file's header: an 8-byte little-endian length, then that
/// much JSON naming each tensor's dtype, shape and byte range after it.
pub(super) struct Header {
    pub tensors: serde_json::Map<String, Value>,
    /// Where the tensor data begins in the file.
    pub data_start: u64,
}

pub(super) fn read_header(path: &Path, file: &File) -> std::result::Result<Header, ModelError> {
    let mut len = [0u8; 8];
    file.read_exact_at(&mut len, 0).map_err(|_| {
        bad(
            path,
            "too short for a safetensors header; the download may be truncated".into(),
        )
    })?;
    let len = u64::from_le_bytes(len);
    // The format caps headers at 100 MB; anything bigger is not safetensors.
    if len > 100_000_000 {
        return Err(bad(
            path,
            format!("claims a {len}-byte header; not a safetensors file"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact_at(&mut header, 8).map_err(|_| {
        bad(
            path,
            "the header is cut short; the download may be truncated".into(),
        )
    })?;
    match serde_json::from_slice(&header) {
        Ok(Value::Object(tensors)) => Ok(Header {
            tensors,
            data_start: 8 + len,
        }),
        Ok(_) => Err(bad(path, "the header is not a JSON object".into())),
        Err(e) => Err(bad(path, format!("the header is not valid JSON: {e}"))),
    }
}

/// Records where each tensor of the file lies, checking that it lies within.
fn add_entries(
    path: &Path,
    file: &File,
    size: u64,
    index: usize,
    entries: &mut HashMap<String, Entry>,
) -> std::result::Result<(), ModelError> {
    let Header {
        tensors,
        data_start,
    } = read_header(path, file)?;
    for (name, info) in tensors {
        if name == "__metadata__" {
            continue;
        }
        let entry = parse_entry(&info, index, data_start)
            .map_err(|what| bad(path, format!("tensor {name}: {what}")))?;
        let end = entry.offset
            + entry.shape.iter().product::<usize>() as u64 * entry.dtype.size_in_bytes() as u64;
        if end > size {
            return Err(bad(
                path,
                format!("tensor {name} runs past the end of the file; the download is truncated — fetch the model again"),
            ));
        }
        entries.insert(name, entry);
    }
    Ok(())
}

fn parse_entry(info: &Value, file: usize, data_start: u64) -> std::result::Result<Entry, String> {
    let dtype = match info.get("dtype").and_then(Value::as_str) {
        Some("F32") => DType::F32,
        Some("F16") => DType::F16,
        Some("BF16") => DType::BF16,
        Some("F64") => DType::F64,
        Some("I64") => DType::I64,
        Some("I32") => DType::I32,
        Some("U32") => DType::U32,
        Some("U8") | Some("BOOL") => DType::U8,
        Some(other) => {
            return Err(format!(
                "its dtype {other} cannot be read by glimpse (expected F32, F16 or BF16 weights)"
            ))
        }
        None => return Err("no dtype".into()),
    };
    let shape = info
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("no shape")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or("a bad shape"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let range = info
        .get("data_offsets")
        .and_then(Value::as_array)
        .filter(|r| r.len() == 2)
        .ok_or("no data_offsets")?;
    let (begin, end) = match (range[0].as_u64(), range[1].as_u64()) {
        (Some(b), Some(e)) if b <= e => (b, e),
        _ => return Err("bad data_offsets".into()),
    };
    let bytes = shape.iter().product::<usize>() as u64 * dtype.size_in_bytes() as u64;
    if end - begin != bytes {
        return Err(format!(
            "its data_offsets span {} bytes, its shape and dtype need {bytes}",
            end - begin
        ));
    }
    Ok(Entry {
        file,
        dtype,
        shape,
        offset: data_start + begin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::max_abs_diff;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models")
            .join(name)
            .join("model.safetensors")
    }

    #[test]
    fn reads_the_same_tensors_as_candle_does_from_a_map() {
        let path = fixture("qwen2_vl");
        let reader = TensorReader::open(std::slice::from_ref(&path)).unwrap();
        let mapped = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        assert!(mapped.len() > 20);
        for (name, expected) in &mapped {
            let got = reader.read(name).unwrap();
            assert_eq!(got.dims(), expected.dims(), "{name}");
            assert_eq!(max_abs_diff(&got, expected), 0.0, "{name}");
        }
    }

    #[test]
    fn a_cut_file_is_named_and_called_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(fixture("qwen2_vl")).unwrap();
        let cut = dir.path().join("model.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
        let e = TensorReader::open(std::slice::from_ref(&cut))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("truncated"),
            "{e}"
        );
    }
}
