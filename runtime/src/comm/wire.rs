//! Little-endian framing shared by the TCP store and the TCP communicator.

use std::io::{self, Read, Write};

pub fn put_u8(w: &mut Vec<u8>, x: u8) {
    w.push(x);
}
pub fn put_u32(w: &mut Vec<u8>, x: u32) {
    w.extend_from_slice(&x.to_le_bytes());
}
pub fn put_u64(w: &mut Vec<u8>, x: u64) {
    w.extend_from_slice(&x.to_le_bytes());
}
pub fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u64(w, b.len() as u64);
    w.extend_from_slice(b);
}

pub fn get_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}
pub fn get_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}
pub fn get_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads a length-prefixed byte string, refusing lengths above `max` (a corrupt or foreign
/// peer must not make us allocate without bound).
pub fn get_bytes(r: &mut impl Read, max: u64) -> io::Result<Vec<u8>> {
    let n = get_u64(r)?;
    if n > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {n} bytes exceeds the limit of {max}"),
        ));
    }
    let mut v = vec![0u8; n as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// f32 values as little-endian bytes.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        bytemuck::cast_slice(v).to_vec()
    } else {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
}

/// Reads `n` little-endian f32 values.
pub fn read_f32s(r: &mut impl Read, n: usize) -> io::Result<Vec<f32>> {
    let mut out = vec![0f32; n];
    if cfg!(target_endian = "little") {
        r.read_exact(bytemuck::cast_slice_mut(&mut out))?;
    } else {
        let mut b = vec![0u8; n * 4];
        r.read_exact(&mut b)?;
        for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
    Ok(out)
}

pub fn write_all(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    w.write_all(b)?;
    w.flush()
}

/// True for the errors a socket read/write gives when its timeout expires.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
