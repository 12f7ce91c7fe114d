//! Dataset shards: streaming writer (temp file, fsync, rename) and a `memmap2` reader with
//! zero-copy record access through a `bytemuck` offset index. Layout: `datagen/FORMAT.md`.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytemuck::{Pod, Zeroable};

use crate::{Error, Instance, Result};

pub const MAGIC: [u8; 8] = *b"SWRLDATA";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const SHARD_EXT: &str = "swrl";

/// One index entry: where a record's bytes are, and their CRC-32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct IndexEntry {
    /// Byte offset from the start of the payload section.
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

struct Header {
    count: u64,
    index_off: u64,
    payload_len: u64,
    index_crc: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        // 12..16 flags: 0 = JSON records
        h[16..24].copy_from_slice(&self.count.to_le_bytes());
        h[24..32].copy_from_slice(&self.index_off.to_le_bytes());
        h[32..40].copy_from_slice(&(HEADER_LEN as u64).to_le_bytes());
        h[40..48].copy_from_slice(&self.payload_len.to_le_bytes());
        h[48..52].copy_from_slice(&self.index_crc.to_le_bytes());
        let hc = crc32(&h[0..52]);
        h[52..56].copy_from_slice(&hc.to_le_bytes());
        h
    }
}

/// Writes one shard; it becomes visible under its final name only after `finish`.
pub struct ShardWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    index: Vec<IndexEntry>,
    payload_len: u64,
}

impl ShardWriter {
    pub fn create(path: &Path) -> Result<ShardWriter> {
        let tmp = path.with_extension(format!("{SHARD_EXT}.tmp"));
        let file = File::create(&tmp).map_err(Error::io("create shard", &tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // A zero header never validates: a killed run leaves nothing that reads as a shard.
        out.write_all(&[0u8; HEADER_LEN])
            .map_err(Error::io("write shard", &tmp))?;
        Ok(ShardWriter {
            out,
            tmp,
            path: path.to_owned(),
            index: Vec::new(),
            payload_len: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.payload_len
    }

    pub fn push_bytes(&mut self, record: &[u8]) -> Result<()> {
        let len = u32::try_from(record.len()).map_err(|_| Error::Format {
            path: self.path.clone(),
            msg: format!("record of {} bytes exceeds 4 GiB", record.len()),
        })?;
        self.out
            .write_all(record)
            .map_err(Error::io("write shard", &self.tmp))?;
        self.index.push(IndexEntry {
            offset: self.payload_len,
            len,
            crc: crc32(record),
        });
        self.payload_len += record.len() as u64;
        Ok(())
    }

    pub fn push(&mut self, inst: &Instance) -> Result<()> {
        let mut bytes = Vec::new();
        crate::record::write_instance(&mut bytes, inst);
        self.push_bytes(&bytes)
    }

    /// Index, header, fsync, rename, directory fsync.
    pub fn finish(mut self) -> Result<PathBuf> {
        let io = |op| Error::io(op, self.tmp.clone());
        let end = HEADER_LEN as u64 + self.payload_len;
        let pad = (8 - end % 8) % 8;
        self.out
            .write_all(&[0u8; 8][..pad as usize])
            .map_err(io("write shard"))?;
        let index_bytes: &[u8] = bytemuck::cast_slice(&self.index);
        self.out
            .write_all(index_bytes)
            .map_err(io("write shard index"))?;
        let header = Header {
            count: self.index.len() as u64,
            index_off: end + pad,
            payload_len: self.payload_len,
            index_crc: crc32(index_bytes),
        };
        self.out
            .seek(SeekFrom::Start(0))
            .map_err(io("seek shard"))?;
        self.out
            .write_all(&header.encode())
            .map_err(io("write shard header"))?;
        let file = self.out.into_inner().map_err(|e| Error::Io {
            op: "flush shard",
            path: self.tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all()
            .map_err(Error::io("fsync shard", &self.tmp))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(Error::io("rename shard", &self.path))?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(self.path)
    }
}

/// A validated, memory-mapped shard.
pub struct Shard {
    map: memmap2::Mmap,
    path: PathBuf,
    count: usize,
    index_off: usize,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Shard {
    pub fn open(path: &Path) -> Result<Shard> {
        let bad = |msg: String| Error::Format {
            path: path.to_owned(),
            msg,
        };
        if cfg!(target_endian = "big") {
            return Err(bad(
                "shards are little-endian; this platform is big-endian".into()
            ));
        }
        let file = File::open(path).map_err(Error::io("open shard", path))?;
        // SAFETY: shards are immutable once renamed into place; the map is read-only.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io("mmap shard", path))?;
        if map.len() < HEADER_LEN {
            return Err(bad(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                map.len()
            )));
        }
        let h = &map[..HEADER_LEN];
        if h[0..8] != MAGIC {
            return Err(bad(format!(
                "bad magic {:?} (not a swerl shard, or an unfinished write)",
                &h[0..8]
            )));
        }
        let version = le_u32(h, 8);
        if version != VERSION {
            return Err(bad(format!(
                "format version {version}, this build reads version {VERSION} only"
            )));
        }
        if crc32(&h[0..52]) != le_u32(h, 52) {
            return Err(bad("header checksum mismatch (corrupt header)".into()));
        }
        let count = le_u64(h, 16);
        let index_off = le_u64(h, 24);
        let payload_off = le_u64(h, 32);
        let payload_len = le_u64(h, 40);
        let expect_len = count.checked_mul(16).and_then(|n| n.checked_add(index_off));
        if payload_off != HEADER_LEN as u64
            || !index_off.is_multiple_of(8)
            || index_off < payload_off.saturating_add(payload_len)
            || expect_len != Some(map.len() as u64)
        {
            return Err(bad(format!(
                "inconsistent layout: {count} records, index at {index_off}, payload {payload_len} bytes, file {} bytes (truncated?)",
                map.len()
            )));
        }
        let index_crc = le_u32(h, 48);
        let shard = Shard {
            map,
            path: path.to_owned(),
            count: count as usize,
            index_off: index_off as usize,
        };
        let index_bytes = &shard.map[shard.index_off..];
        if crc32(index_bytes) != index_crc {
            return Err(bad("index checksum mismatch (corrupt index)".into()));
        }
        for (i, e) in shard.index().iter().enumerate() {
            if e.offset
                .checked_add(e.len as u64)
                .is_none_or(|end| end > payload_len)
            {
                return Err(bad(format!("record {i} points outside the payload")));
            }
        }
        Ok(shard)
    }

    pub fn index(&self) -> &[IndexEntry] {
        bytemuck::cast_slice(&self.map[self.index_off..])
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record's bytes, borrowed from the map, after checking its CRC.
    pub fn get_bytes(&self, i: usize) -> Result<&[u8]> {
        let e = self.index().get(i).ok_or_else(|| Error::Record {
            path: self.path.clone(),
            index: i,
            msg: format!("out of range (shard has {})", self.count),
        })?;
        let start = HEADER_LEN + e.offset as usize;
        let bytes = &self.map[start..start + e.len as usize];
        if crc32(bytes) != e.crc {
            return Err(Error::Record {
                path: self.path.clone(),
                index: i,
                msg: "checksum mismatch (corrupt record)".into(),
            });
        }
        Ok(bytes)
    }

    pub fn get(&self, i: usize) -> Result<Instance> {
        serde_json::from_slice(self.get_bytes(i)?).map_err(|e| Error::Record {
            path: self.path.clone(),
            index: i,
            msg: e.to_string(),
        })
    }
}
