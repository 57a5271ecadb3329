//! Finding and opening a checkpoint's safetensors, and recognising which
//! naming layout it uses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde_json::Value;

use super::tensor_reader::{read_header, TensorReader};
use super::ModelError;

/// Where the decoder, the vision tower and the output head live in the tensor names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    pub text: &'static str,
    pub vision: &'static str,
    pub lm_head: &'static str,
}

/// Layouts in the wild: the original release names, the names of transformers
/// ≥ 4.52 module trees, and MLX-community exports.
const LAYOUTS: [KeyLayout; 3] = [
    KeyLayout {
        text: "model",
        vision: "visual",
        lm_head: "lm_head",
    },
    KeyLayout {
        text: "model.language_model",
        vision: "model.visual",
        lm_head: "lm_head",
    },
    KeyLayout {
        text: "language_model.model",
        vision: "vision_tower",
        lm_head: "language_model.lm_head",
    },
];

pub struct Checkpoint {
    pub files: Vec<PathBuf>,
    pub layout: KeyLayout,
    pub has_lm_head: bool,
    pub vb: VarBuilder<'static>,
}

/// The safetensors files of a model directory: the shards named by
/// `model.safetensors.index.json`, or `model.safetensors`, or every
/// `*.safetensors` file.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::BadWeights {
            path: index.clone(),
            what: format!("cannot read it: {e}"),
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| ModelError::BadWeights {
            path: index.clone(),
            what: format!("not valid JSON: {e}"),
        })?;
        let map = value
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| ModelError::BadWeights {
                path: index.clone(),
                what: "has no \"weight_map\" object".into(),
            })?;
        let names: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let p = dir.join(name);
            if !p.exists() {
                return Err(ModelError::MissingFile {
                    path: p,
                    what: format!(
                        "listed in {} but missing; the download is incomplete — fetch the model again",
                        index.display()
                    ),
                });
            }
            files.push(p);
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::MissingFile {
            path: dir.to_path_buf(),
            what: format!("cannot list the model directory: {e}"),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        let has_bin = dir.join("pytorch_model.bin").exists()
            || dir.join("pytorch_model.bin.index.json").exists();
        return Err(ModelError::MissingFile {
            path: single,
            what: if has_bin {
                "only PyTorch .bin weights were found; glimpse reads safetensors — re-save the model with save_pretrained(safe_serialization=True)".into()
            } else {
                "no safetensors weights in the model directory (expected model.safetensors or model.safetensors.index.json)".into()
            },
        });
    }
    Ok(files)
}

pub fn open_checkpoint(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<Checkpoint, ModelError> {
    let files = safetensors_files(dir)?;
    let reader = TensorReader::open(&files)?;
    let vb = VarBuilder::from_backend(Box::new(reader), dtype, device.clone());
    let layout = LAYOUTS
        .iter()
        .find(|l| vb.contains_tensor(&format!("{}.embed_tokens.weight", l.text)))
        .cloned()
        .ok_or_else(|| ModelError::BadWeights {
            path: files[0].clone(),
            what: "no token embedding found (looked for model.embed_tokens.weight, model.language_model.embed_tokens.weight and language_model.model.embed_tokens.weight); is this a Qwen-VL checkpoint?".into(),
        })?;
    let has_lm_head = vb.contains_tensor(&format!("{}.weight", layout.lm_head));
    Ok(Checkpoint {
        files,
        layout,
        has_lm_head,
        vb,
    })
}

/// Drops the whole pages inside `bytes` from the process (read-only file
/// pages: touching them again reads them back from the file). `bytes` must
/// lie in a read-only file mapping.
#[cfg(unix)]
pub(super) fn release_pages(bytes: &[u8]) {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
    let start = (bytes.as_ptr() as usize).next_multiple_of(page);
    let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
    if end > start {
        // SAFETY: the range lies inside a private read-only file mapping
        // that stays mapped; MADV_DONTNEED only discards its resident pages,
        // so later reads fault the same bytes in from the file. Failure
        // leaves the pages resident, which is harmless.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

#[cfg(not(unix))]
pub(super) fn release_pages(_: &[u8]) {}

/// Number of values in all tensors of one safetensors file, from its header
/// alone (an 8-byte little-endian length, then that much JSON).
pub fn header_elements(path: &Path) -> Result<u64, ModelError> {
    let bad = |what: String| ModelError::BadWeights {
        path: path.to_path_buf(),
        what,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it: {e}")))?;
    let tensors = read_header(path, &file)?.tensors;
    let mut total = 0u64;
    for (name, info) in &tensors {
        if name == "__metadata__" {
            continue;
        }
        let shape = info
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("tensor {name} has no shape")))?;
        let mut n = 1u64;
        for dim in shape {
            n *= dim
                .as_u64()
                .ok_or_else(|| bad(format!("tensor {name} has a bad shape")))?;
        }
        total += n;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{fixture_model, FIXTURE_FAMILIES};

    #[test]
    fn header_element_counts_account_for_every_f32_byte_of_the_fixtures() {
        // The fixture checkpoints are float32: the data after each header is
        // exactly 4 bytes per value the header lists.
        for model in FIXTURE_FAMILIES {
            let mut elements = 0;
            let mut data_bytes = 0;
            for file in safetensors_files(&fixture_model(model)).unwrap() {
                let bytes = std::fs::read(&file).unwrap();
                let header = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                data_bytes += bytes.len() as u64 - 8 - header;
                elements += header_elements(&file).unwrap();
            }
            assert!(elements > 10_000, "{model}: {elements}");
            assert_eq!(elements * 4, data_bytes, "{model}");
        }
    }

    #[test]
    fn a_file_that_is_not_safetensors_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("glimpse-header-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        std::fs::write(&path, b"<html>not found</html>").unwrap();
        let e = header_elements(&path).unwrap_err().to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("safetensors"),
            "{e}"
        );
        std::fs::write(&path, b"abc").unwrap();
        let e = header_elements(&path).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
