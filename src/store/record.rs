//! Versioned record encoding: a format byte, then tagged fields
//! (tag, LEB128 length, bytes). A reader skips tags it does not know, so a
//! newer module reads what an older one wrote and the other way round; a
//! field a record needs and does not find is an error the caller reports.

use std::fmt;

/// The envelope format this module writes. Readers accept it and every
/// older one.
pub const FORMAT: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    Empty,
    UnknownFormat(u8),
    Truncated,
    Missing(u8),
    BadField(u8),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Empty => write!(f, "empty record"),
            RecordError::UnknownFormat(v) => {
                write!(f, "record format {v} is newer than this module")
            }
            RecordError::Truncated => write!(f, "truncated record"),
            RecordError::Missing(t) => write!(f, "record lacks field {t}"),
            RecordError::BadField(t) => write!(f, "record field {t} is malformed"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Builds a record.
#[derive(Debug, Default)]
pub struct RecordWriter {
    buf: Vec<u8>,
}

impl RecordWriter {
    pub fn new() -> Self {
        // Room for a dialog record with a short route set: no regrowth.
        let mut buf = Vec::with_capacity(256);
        buf.push(FORMAT);
        RecordWriter { buf }
    }

    pub fn bytes(mut self, tag: u8, value: &[u8]) -> Self {
        self.buf.push(tag);
        let mut n = value.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(b);
                break;
            }
            self.buf.push(b | 0x80);
        }
        self.buf.extend_from_slice(value);
        self
    }

    pub fn u64(self, tag: u8, value: u64) -> Self {
        self.bytes(tag, &value.to_le_bytes())
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A decoded record: its fields in order, borrowed from the input.
#[derive(Debug)]
pub struct Record<'a> {
    fields: Vec<(u8, &'a [u8])>,
}

impl<'a> Record<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Record<'a>, RecordError> {
        let (&format, mut rest) = data.split_first().ok_or(RecordError::Empty)?;
        if format == 0 || format > FORMAT {
            return Err(RecordError::UnknownFormat(format));
        }
        let mut fields = Vec::with_capacity(12);
        while let Some((&tag, r)) = rest.split_first() {
            let (len, r) = read_len(r)?;
            if r.len() < len {
                return Err(RecordError::Truncated);
            }
            fields.push((tag, &r[..len]));
            rest = &r[len..];
        }
        Ok(Record { fields })
    }

    pub fn get(&self, tag: u8) -> Option<&'a [u8]> {
        self.fields.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }

    /// Every value of a repeated field, in order.
    pub fn all(&self, tag: u8) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.fields
            .iter()
            .filter(move |(t, _)| *t == tag)
            .map(|(_, v)| *v)
    }

    pub fn bytes(&self, tag: u8) -> Result<&'a [u8], RecordError> {
        self.get(tag).ok_or(RecordError::Missing(tag))
    }

    pub fn u64(&self, tag: u8) -> Result<u64, RecordError> {
        let b = self.bytes(tag)?;
        let arr: [u8; 8] = b.try_into().map_err(|_| RecordError::BadField(tag))?;
        Ok(u64::from_le_bytes(arr))
    }

    pub fn str(&self, tag: u8) -> Result<&'a str, RecordError> {
        std::str::from_utf8(self.bytes(tag)?).map_err(|_| RecordError::BadField(tag))
    }
}

fn read_len(data: &[u8]) -> Result<(usize, &[u8]), RecordError> {
    let mut n: usize = 0;
    for (i, &b) in data.iter().enumerate().take(5) {
        n |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((n, &data[i + 1..]));
        }
    }
    Err(RecordError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let long = vec![7u8; 300];
        let data = RecordWriter::new()
            .bytes(1, b"c12345abcd")
            .u64(2, 1_700_000_000_123)
            .bytes(3, &long)
            .finish();
        let r = Record::parse(&data).unwrap();
        assert_eq!(r.str(1).unwrap(), "c12345abcd");
        assert_eq!(r.u64(2).unwrap(), 1_700_000_000_123);
        assert_eq!(r.bytes(3).unwrap(), &long[..]);
        assert_eq!(r.get(4), None);
        assert_eq!(r.bytes(4), Err(RecordError::Missing(4)));
    }

    #[test]
    fn reads_what_format_1_wrote() {
        // Bytes as format 1 writes them; kept literally so a later change of
        // the writer cannot silently break reading stored records.
        let v1 = [1u8, 1, 3, b'a', b'b', b'c', 2, 8, 1, 0, 0, 0, 0, 0, 0, 0];
        let r = Record::parse(&v1).unwrap();
        assert_eq!(r.str(1).unwrap(), "abc");
        assert_eq!(r.u64(2).unwrap(), 1);
    }

    #[test]
    fn unknown_fields_from_a_newer_writer_are_skipped() {
        let data = RecordWriter::new()
            .bytes(1, b"x")
            .bytes(200, b"field added by a later version")
            .u64(2, 5)
            .finish();
        let r = Record::parse(&data).unwrap();
        assert_eq!(r.str(1).unwrap(), "x");
        assert_eq!(r.u64(2).unwrap(), 5);
    }

    #[test]
    fn damaged_records_are_errors() {
        assert_eq!(Record::parse(&[]).unwrap_err(), RecordError::Empty);
        assert_eq!(
            Record::parse(&[9]).unwrap_err(),
            RecordError::UnknownFormat(9)
        );
        assert_eq!(
            Record::parse(&[1, 1, 5, b'a']).unwrap_err(),
            RecordError::Truncated
        );
        assert_eq!(
            Record::parse(&[1, 1, 0x80]).unwrap_err(),
            RecordError::Truncated
        );
        let bad_u64 = RecordWriter::new().bytes(2, b"abc").finish();
        assert_eq!(
            Record::parse(&bad_u64).unwrap().u64(2),
            Err(RecordError::BadField(2))
        );
        for n in 0..40u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(97)).collect();
            let _ = Record::parse(&junk);
        }
    }
}
