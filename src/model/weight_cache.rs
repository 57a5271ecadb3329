//! A cache of quantised weights: a model quantised once loads again from one
//! file of ready blocks, without reading its float matrices or quantising.
//!
//! One file per model folder, quant type, dtype and vision choice. The file
//! says which checkpoint, glimpse version and settings made it; a file made
//! by anything else, cut short or damaged is never used, only replaced.
//!
//! Layout: magic, header length (u64 LE), SHA-256 of the header, the header
//! (JSON), then each matrix's ggml blocks at a 64-byte aligned offset. Each
//! matrix carries its own SHA-256, so a file is checked in parallel as it is
//! read. The file is read through a mapping whose pages are let go matrix by
//! matrix, so a load holds little beyond the tensors it makes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{DType, Device};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::linear::QuantisedMatrix;
use super::quant::Quant;
use crate::human::hex;

const MAGIC: &[u8; 8] = b"GLMQW001";
/// Magic, header length, header digest.
const PREAMBLE: u64 = 8 + 8 + 32;
const ALIGN: u64 = 64;
/// Bytes read from the start, middle and end of every tensor for the key.
const SAMPLE: u64 = 4096;

/// How a load used the cache, for reports and notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// No cache: float weights, or no cache folder given.
    Off,
    /// Every quantised matrix came from the cache.
    Hit,
    /// There was no cache file; one was written.
    Written,
    /// The file there could not be used (why); a new one was written.
    Rebuilt(String),
    /// The weights were quantised but could not be written (why).
    NotWritten(String),
}

impl CacheUse {
    /// One word for reports: off, hit, written, rebuilt or not_written.
    pub fn name(&self) -> &'static str {
        match self {
            CacheUse::Off => "off",
            CacheUse::Hit => "hit",
            CacheUse::Written => "written",
            CacheUse::Rebuilt(_) => "rebuilt",
            CacheUse::NotWritten(_) => "not_written",
        }
    }

    /// What a person should hear about it, if anything.
    pub fn notice(&self, entry: &Path) -> Option<String> {
        match self {
            CacheUse::Rebuilt(why) => Some(format!(
                "the quantised-weights cache {} {why}; rebuilt it",
                entry.display()
            )),
            CacheUse::NotWritten(why) => Some(format!(
                "could not write the quantised-weights cache {} ({why}); the next load quantises again",
                entry.display()
            )),
            _ => None,
        }
    }
}

/// Which checkpoint and settings a cache file belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    glimpse: String,
    /// See [`checkpoint_key`].
    checkpoint: String,
    quant: String,
    dtype: String,
    vision: bool,
}

#[derive(Serialize, Deserialize)]
struct Header {
    identity: Identity,
    matrices: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    format: String,
    shape: Vec<usize>,
    offset: u64,
    bytes: u64,
    sha256: String,
}

/// The cache file of one model folder and choice of settings.
pub struct WeightCache {
    pub path: PathBuf,
    identity: Identity,
}

impl WeightCache {
    /// The entry under `root` for the checkpoint `files` of `model_dir`,
    /// stored as `quant` in `dtype`, the vision tower quantised or not.
    pub fn locate(
        root: &Path,
        model_dir: &Path,
        files: &[PathBuf],
        quant: Quant,
        dtype: DType,
        vision: bool,
    ) -> std::io::Result<WeightCache> {
        let dir = std::fs::canonicalize(model_dir).unwrap_or_else(|_| model_dir.to_path_buf());
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
                "_",
            );
        let folder = format!(
            "{name}-{}",
            &hex(&Sha256::digest(dir.as_os_str().as_encoded_bytes()))[..12]
        );
        let dtype = format!("{dtype:?}").to_lowercase();
        let file = format!(
            "{quant}-{dtype}{}.qweights",
            if vision { "-vision" } else { "" }
        );
        Ok(WeightCache {
            path: root.join(folder).join(file),
            identity: Identity {
                glimpse: env!("CARGO_PKG_VERSION").into(),
                checkpoint: checkpoint_key(model_dir, files)?,
                quant: quant.name().into(),
                dtype,
                vision,
            },
        })
    }

    /// The cached matrices by tensor name; `Ok(None)` when there is no file,
    /// `Err(why)` when the file there cannot be used.
    pub fn read(&self, device: &Device) -> Result<Option<HashMap<String, QTensor>>, String> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot be read ({e})")),
        };
        let header = read_header(&mut file)?;
        let theirs = &header.identity;
        let ours = &self.identity;
        if theirs.glimpse != ours.glimpse {
            return Err(format!("was made by glimpse {}", theirs.glimpse));
        }
        if theirs.checkpoint != ours.checkpoint {
            return Err("belongs to other model files (they changed)".into());
        }
        if theirs != ours {
            return Err("was made with other settings".into());
        }
        // SAFETY: mapped read-only; the cache is only ever replaced by
        // renaming a new file over it, which leaves this mapping intact.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot be read ({e})"))?;
        if header
            .matrices
            .iter()
            .any(|m| m.offset.saturating_add(m.bytes) > map.len() as u64)
        {
            return Err("is cut short".into());
        }
        let matrices = header
            .matrices
            .par_iter()
            .map(|m| Ok((m.name.clone(), read_matrix(&map, m, device)?)))
            .collect::<Result<HashMap<_, _>, String>>()?;
        Ok(Some(matrices))
    }

    /// Writes `matrices` to a temporary file beside the entry, then renames
    /// it over the entry, so a reader never sees half a file. A packed
    /// matrix gives back its blocks one at a time, twice (to checksum, then
    /// to write), so the model's blocks are never all held twice.
    pub fn write(&self, matrices: &[(String, QuantisedMatrix)]) -> Result<(), String> {
        let sums = matrices
            .par_iter()
            .map(|(_, q)| {
                let data = blocks_of(q)?;
                let dims = q.dims().map_err(|e| super::without_backtrace(&e))?;
                Ok((data.len() as u64, hex(&Sha256::digest(&data)), dims))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut entries = Vec::with_capacity(matrices.len());
        let mut offset = 0u64;
        for ((name, q), (bytes, digest, (outputs, inputs))) in matrices.iter().zip(sums) {
            entries.push(Entry {
                name: name.clone(),
                format: format!("{:?}", q.format()),
                shape: vec![outputs, inputs],
                offset,
                bytes,
                sha256: digest,
            });
            offset = (offset + bytes).next_multiple_of(ALIGN);
        }
        let mut header = Header {
            identity: self.identity.clone(),
            matrices: entries,
        };
        // Offsets become absolute once the header's length is known; the
        // digits of the offsets change that length, so settle it first.
        let mut start = 0;
        loop {
            let json = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
            let data_start = (PREAMBLE + json.len() as u64).next_multiple_of(ALIGN);
            if data_start == start {
                return self.write_file(&json, &header, matrices);
            }
            for m in &mut header.matrices {
                m.offset = m.offset - start + data_start;
            }
            start = data_start;
        }
    }

    fn write_file(
        &self,
        json: &[u8],
        header: &Header,
        matrices: &[(String, QuantisedMatrix)],
    ) -> Result<(), String> {
        let dir = self.path.parent().ok_or("the cache path has no folder")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
        let mut out = std::io::BufWriter::new(tmp);
        let io = |e: std::io::Error| e.to_string();
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&Sha256::digest(json)).map_err(io)?;
        out.write_all(json).map_err(io)?;
        let mut at = PREAMBLE + json.len() as u64;
        for (m, (_, q)) in header.matrices.iter().zip(matrices) {
            let data = blocks_of(q)?;
            if data.len() as u64 != m.bytes {
                return Err(format!("{} changed while being written", m.name));
            }
            let pad = m.offset.checked_sub(at).ok_or("overlapping offsets")?;
            out.write_all(&vec![0u8; pad as usize]).map_err(io)?;
            out.write_all(&data).map_err(io)?;
            at = m.offset + data.len() as u64;
        }
        let tmp = out.into_inner().map_err(|e| e.error().to_string())?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| e.error.to_string())?;
        Ok(())
    }
}

fn blocks_of(q: &QuantisedMatrix) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    q.ggml_bytes().map_err(|e| super::without_backtrace(&e))
}

/// One matrix from the mapped file: checked, copied into its tensor, and
/// its mapped pages let go (offsets are 64-byte aligned in a page-aligned
/// mapping, so the blocks' f16 and f32 fields are aligned).
fn read_matrix(map: &[u8], m: &Entry, device: &Device) -> Result<QTensor, String> {
    let damaged = |what: String| format!("is damaged ({}: {what})", m.name);
    let format = parse_format(&m.format).ok_or_else(|| damaged("unknown format".into()))?;
    let bytes = &map[m.offset as usize..(m.offset + m.bytes) as usize];
    if hex(&Sha256::digest(bytes)) != m.sha256 {
        return Err(damaged("checksum mismatch".into()));
    }
    let elements: usize = m.shape.iter().product();
    if !m.offset.is_multiple_of(ALIGN)
        || elements / format.block_size() * format.type_size() != bytes.len()
    {
        return Err(damaged("size or place does not match its shape".into()));
    }
    let q = qtensor_from_ggml(format, bytes, m.shape.clone(), device)
        .map_err(|e| damaged(super::without_backtrace(&e)));
    super::weights::release_pages(bytes);
    q
}

fn read_header(file: &mut File) -> Result<Header, String> {
    let short = |_| "is cut short or not a weights cache".to_string();
    let mut preamble = [0u8; PREAMBLE as usize];
    file.read_exact(&mut preamble).map_err(short)?;
    if &preamble[..8] != MAGIC {
        return Err("is not a weights cache of this glimpse (unknown format)".into());
    }
    let len = u64::from_le_bytes(preamble[8..16].try_into().unwrap_or_default());
    if len > 64 << 20 {
        return Err("is damaged (header length)".into());
    }
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json).map_err(short)?;
    if Sha256::digest(&json).as_slice() != &preamble[16..] {
        return Err("is damaged (header checksum mismatch)".into());
    }
    serde_json::from_slice(&json).map_err(|e| format!("is damaged (header: {e})"))
}

/// What identifies a checkpoint's content: SHA-256 over config.json and,
/// per safetensors file, its name, size, header and 4 KiB from the start,
/// middle and end of every tensor. Hashing every byte would read the whole
/// checkpoint (gigabytes, seconds to minutes) on each load, the cost the
/// cache exists to avoid; size and mtime miss a file copied over with the
/// same size or touched without change. The header pins every name, dtype,
/// shape and offset, and training moves every weight of a tensor, so a
/// retrained or fine-tuned checkpoint changes the samples of each tensor
/// it touches.
pub fn checkpoint_key(model_dir: &Path, files: &[PathBuf]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    if let Ok(config) = std::fs::read(model_dir.join("config.json")) {
        h.update(&config);
    }
    for path in files {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        h.update(path.file_name().unwrap_or_default().as_encoded_bytes());
        h.update(size.to_le_bytes());
        let mut len = [0u8; 8];
        file.read_exact(&mut len)?;
        let len = u64::from_le_bytes(len).min(size.saturating_sub(8));
        let mut header = vec![0u8; len as usize];
        file.read_exact(&mut header)?;
        h.update(&header);
        for (start, end) in tensor_ranges(&header) {
            let (start, end) = (8 + len + start, (8 + len + end).min(size));
            let mid = start + (end.saturating_sub(start)) / 2;
            for at in [
                start,
                mid.saturating_sub(SAMPLE / 2).max(start),
                end.saturating_sub(SAMPLE).max(start),
            ] {
                let mut sample = vec![0u8; SAMPLE.min(end.saturating_sub(at)) as usize];
                file.seek(SeekFrom::Start(at))?;
                file.read_exact(&mut sample)?;
                h.update(&sample);
            }
        }
    }
    Ok(hex(&h.finalize()))
}

/// Each tensor's data span relative to the end of the header, in name
/// order; nothing for a header that does not parse (its bytes are hashed
/// anyway, and loading the checkpoint reports it).
fn tensor_ranges(header: &[u8]) -> Vec<(u64, u64)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(header) else {
        return Vec::new();
    };
    let mut named: Vec<(&String, (u64, u64))> = map
        .iter()
        .filter_map(|(name, info)| {
            let o = info.get("data_offsets")?.as_array()?;
            Some((name, (o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
        })
        .collect();
    named.sort();
    named.into_iter().map(|(_, r)| r).collect()
}

fn parse_format(name: &str) -> Option<GgmlDType> {
    use GgmlDType::*;
    [
        Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, F32, F16, BF16,
    ]
    .into_iter()
    .find(|f| format!("{f:?}") == name)
}

#[cfg(test)]
mod tests {
    use candle_core::Tensor;

    use super::*;
    use crate::model::{LoadOptions, VlModel};

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/qwen2_vl")
    }

    fn load(dir: &Path, root: &Path, quant: Quant, vision: bool) -> VlModel {
        let options = LoadOptions {
            quant,
            quant_vision: vision,
            cache_root: Some(root.to_path_buf()),
            ..LoadOptions::default()
        };
        VlModel::load_with(dir, &Device::Cpu, DType::F32, &options, &|_, _| {}).unwrap()
    }

    fn logits(m: &VlModel) -> Vec<f32> {
        let ids = [3u32, 14, 15, 92, 65];
        let positions: Vec<[i64; 3]> = (0..ids.len() as i64).map(|i| [i, i, i]).collect();
        let mut cache = m.new_cache();
        m.forward(&ids, &positions, None, &mut cache)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// The tower's output on a fixed 4 × 4-patch image.
    fn vision(m: &VlModel) -> Vec<f32> {
        let cols = m.config.vision.patch_dim();
        let n = 16 * cols;
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let pixels = Tensor::from_vec(values, (16, cols), &Device::Cpu).unwrap();
        let out = m.encode_images(&pixels, &[[1, 4, 4]]).unwrap();
        out.embeds.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// How a q8_0 load of the fixture (vision tower float) used the cache.
    fn plain_q8_use(root: &Path) -> CacheUse {
        load(&fixture(), root, Quant::Q8_0, false).weight_cache.0
    }

    fn cache_file(m: &VlModel) -> PathBuf {
        m.weight_cache.1.clone().expect("a cache entry")
    }

    /// For a dense model and both mixture-of-experts layouts (fused experts
    /// are read lazily: a cached load must still find every expert).
    #[test]
    fn the_second_load_comes_from_the_cache_with_identical_logits() {
        for family in ["qwen2_vl", "qwen3_vl_moe", "qwen3_5_moe"] {
            let dir = fixture().with_file_name(family);
            let root = tempfile::tempdir().unwrap();
            let first = load(&dir, root.path(), Quant::Q8_0, false);
            assert_eq!(first.weight_cache.0, CacheUse::Written, "{family}");
            assert!(cache_file(&first).is_file());
            let second = load(&dir, root.path(), Quant::Q8_0, false);
            assert_eq!(second.weight_cache.0, CacheUse::Hit, "{family}");
            assert_eq!(logits(&first), logits(&second), "{family}");
            assert_eq!(first.linear_bytes(), second.linear_bytes());
            // And both match quantising without a cache.
            let plain =
                VlModel::load_quantized(&dir, &Device::Cpu, DType::F32, Quant::Q8_0, &|_, _| {})
                    .unwrap();
            assert_eq!(plain.weight_cache.0, CacheUse::Off);
            assert_eq!(logits(&plain), logits(&second), "{family}");
        }
    }

    #[test]
    fn float_weights_use_no_cache() {
        let root = tempfile::tempdir().unwrap();
        let m = load(&fixture(), root.path(), Quant::None, false);
        assert_eq!(m.weight_cache, (CacheUse::Off, None));
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_or_cut_cache_is_rebuilt_never_trusted() {
        let root = tempfile::tempdir().unwrap();
        let fresh = load(&fixture(), root.path(), Quant::Q8_0, false);
        let want = logits(&fresh);
        let path = cache_file(&fresh);
        let good = std::fs::read(&path).unwrap();
        let header_end = PREAMBLE as usize + 10;
        let cases: [(&str, Vec<u8>); 4] = [
            ("damaged", {
                let mut b = good.clone();
                *b.last_mut().unwrap() ^= 0x10;
                b
            }),
            ("damaged", {
                let mut b = good.clone();
                b[header_end] ^= 0x01;
                b
            }),
            ("cut short", good[..good.len() / 2].to_vec()),
            ("cut short", good[..20].to_vec()),
        ];
        for (why, bytes) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let m = load(&fixture(), root.path(), Quant::Q8_0, false);
            match &m.weight_cache.0 {
                CacheUse::Rebuilt(w) => assert!(w.contains(why), "{why}: {w}"),
                other => panic!("{why}: {other:?}"),
            }
            let notice = m.weight_cache.0.notice(&path).unwrap();
            assert!(notice.contains("rebuilt"), "{notice}");
            assert_eq!(logits(&m), want, "{why}");
            assert_eq!(std::fs::read(&path).unwrap(), good, "{why}: rewritten");
            assert_eq!(plain_q8_use(root.path()), CacheUse::Hit);
        }
    }

    #[test]
    fn a_changed_model_file_invalidates_the_cache() {
        let root = tempfile::tempdir().unwrap();
        let model = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), model.path().join(entry.file_name())).unwrap();
        }
        let before = load(model.path(), root.path(), Quant::Q8_0, false);
        assert_eq!(before.weight_cache.0, CacheUse::Written);
        // One weight of one matrix changes; sizes and shapes stay.
        let file = model.path().join("model.safetensors");
        let mut bytes = std::fs::read(&file).unwrap();
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
        let start = header["model.layers.0.mlp.up_proj.weight"]["data_offsets"][0]
            .as_u64()
            .unwrap() as usize;
        bytes[8 + len + start + 3] ^= 0x01;
        std::fs::write(&file, &bytes).unwrap();
        let after = load(model.path(), root.path(), Quant::Q8_0, false);
        match &after.weight_cache.0 {
            CacheUse::Rebuilt(why) => assert!(why.contains("other model files"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(cache_file(&after), cache_file(&before));
        assert_ne!(logits(&after), logits(&before));
    }

    #[test]
    fn each_quant_type_and_vision_choice_is_its_own_entry() {
        let root = tempfile::tempdir().unwrap();
        let q8 = load(&fixture(), root.path(), Quant::Q8_0, false);
        let q4 = load(&fixture(), root.path(), Quant::Q4K, false);
        let q8v = load(&fixture(), root.path(), Quant::Q8_0, true);
        for m in [&q4, &q8v] {
            assert_eq!(m.weight_cache.0, CacheUse::Written);
        }
        let paths = [cache_file(&q8), cache_file(&q4), cache_file(&q8v)];
        assert!(paths[0] != paths[1] && paths[1] != paths[2] && paths[0] != paths[2]);
        let again = load(&fixture(), root.path(), Quant::Q8_0, true);
        assert_eq!(again.weight_cache.0, CacheUse::Hit);
        assert_eq!(vision(&again), vision(&q8v));
        // The vision tower really is quantised: it differs from the float one.
        assert_ne!(vision(&again), vision(&q8));
        assert_eq!(plain_q8_use(root.path()), CacheUse::Hit);
    }

    #[test]
    fn a_cache_from_another_version_is_rebuilt_with_a_notice() {
        let root = tempfile::tempdir().unwrap();
        let path = cache_file(&load(&fixture(), root.path(), Quant::Q8_0, false));
        let mut file = File::open(&path).unwrap();
        let mut header = read_header(&mut file).unwrap();
        header.identity.glimpse = "0.0.1".into();
        let json = serde_json::to_vec(&header).unwrap();
        let good = std::fs::read(&path).unwrap();
        let old_len = u64::from_le_bytes(good[8..16].try_into().unwrap()) as usize;
        // Same length (the version strings are), so the offsets still hold.
        assert_eq!(json.len(), old_len);
        let mut bytes = good[..8].to_vec();
        bytes.extend((json.len() as u64).to_le_bytes());
        bytes.extend(Sha256::digest(&json));
        bytes.extend(&json);
        bytes.extend(&good[PREAMBLE as usize + old_len..]);
        std::fs::write(&path, bytes).unwrap();
        match load(&fixture(), root.path(), Quant::Q8_0, false)
            .weight_cache
            .0
        {
            CacheUse::Rebuilt(why) => assert_eq!(why, "was made by glimpse 0.0.1"),
            other => panic!("{other:?}"),
        }
    }
}
