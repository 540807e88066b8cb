//! Confluent Schema Registry framing of protobuf records.
//!
//! Confluent's protobuf serializer writes `0x00`, a 4-byte big-endian schema id, the path of
//! the message in its `.proto` file as message indexes (a zigzag varint count, then each
//! index as a zigzag varint; the common `[0]` is shortened to the single byte `0`), and then
//! the protobuf encoding. A plain protobuf message never starts with `0x00` (field number 0
//! does not exist), so the first byte tells the two apart without a registry.
//!
//! `hookline.v1.Event` is message `[0]` of `hookline/v1/hookline.proto`: a frame naming
//! that path is read like a plain record; any other path is refused with what to change.

/// A record value, with its framing recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing<'a> {
    Plain(&'a [u8]),
    SchemaRegistry { schema_id: u32, message: &'a [u8] },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("starts with the Confluent Schema Registry magic byte 0 but is cut short ({0} bytes)")]
    Truncated(usize),
    #[error(
        "Confluent Schema Registry framing (schema id {schema_id}) names message {indexes:?} of its schema; \
         Hookline reads hookline.v1.Event, message [0] of hookline/v1/hookline.proto: register that file \
         unchanged as the subject's schema, or publish the Event without the Schema Registry serializer"
    )]
    OtherMessage { schema_id: u32, indexes: Vec<i64> },
}

/// Recognises the framing of a record value.
pub fn unframe(value: &[u8]) -> Result<Framing<'_>, FramingError> {
    let Some((&0, rest)) = value.split_first() else {
        return Ok(Framing::Plain(value));
    };
    let truncated = || FramingError::Truncated(value.len());
    let (id, mut rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
    let schema_id = u32::from_be_bytes(*id);
    let count = zigzag_varint(&mut rest).ok_or_else(truncated)?;
    let indexes = if count == 0 {
        vec![0]
    } else {
        // Each index takes at least one byte: a count past what is left is garbage.
        let n = usize::try_from(count).ok().filter(|&n| n <= rest.len()).ok_or_else(truncated)?;
        (0..n).map(|_| zigzag_varint(&mut rest)).collect::<Option<Vec<_>>>().ok_or_else(truncated)?
    };
    if indexes != [0] {
        return Err(FramingError::OtherMessage { schema_id, indexes });
    }
    Ok(Framing::SchemaRegistry { schema_id, message: rest })
}

/// Reads one zigzag-encoded varint (Kafka's `ByteUtils.readVarint`) off the front of `buf`.
fn zigzag_varint(buf: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zigzag(v: i64, out: &mut Vec<u8>) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    fn frame(schema_id: u32, indexes: &[i64], message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&schema_id.to_be_bytes());
        zigzag(indexes.len() as i64, &mut out);
        for &i in indexes {
            zigzag(i, &mut out);
        }
        out.extend_from_slice(message);
        out
    }

    #[test]
    fn plain_protobuf_passes_through() {
        assert_eq!(unframe(b"\x0a\x03abc"), Ok(Framing::Plain(b"\x0a\x03abc")));
        assert_eq!(unframe(b""), Ok(Framing::Plain(b"")));
    }

    #[test]
    fn the_short_and_the_long_form_of_index_zero_are_read() {
        let short = [0, 0, 0, 1, 2, 0, 0x0a, 0x01, b'x'];
        assert_eq!(unframe(&short), Ok(Framing::SchemaRegistry { schema_id: 258, message: b"\x0a\x01x" }));
        let long = frame(7, &[0], b"\x0a\x01x");
        assert_eq!(long[5..7], [2, 0], "count 1 then index 0, both zigzag");
        assert_eq!(unframe(&long), Ok(Framing::SchemaRegistry { schema_id: 7, message: b"\x0a\x01x" }));
    }

    #[test]
    fn another_message_or_a_cut_frame_is_refused() {
        let err = unframe(&frame(9, &[1, 0], b"\x0a\x01x")).expect_err("other message");
        assert_eq!(err, FramingError::OtherMessage { schema_id: 9, indexes: vec![1, 0] });
        assert!(err.to_string().contains("hookline/v1/hookline.proto"), "{err}");
        for cut in [&[0u8][..], &[0, 0, 0], &[0, 0, 0, 0, 1], &[0, 0, 0, 0, 1, 6, 2]] {
            assert_eq!(unframe(cut), Err(FramingError::Truncated(cut.len())), "{cut:?}");
        }
    }

    proptest! {
        #[test]
        fn any_frame_round_trips(schema_id: u32, indexes in prop::collection::vec(0i64..1000, 1..5), message in prop::collection::vec(any::<u8>(), 0..64)) {
            let framed = frame(schema_id, &indexes, &message);
            match unframe(&framed) {
                Ok(Framing::SchemaRegistry { schema_id: id, message: m }) => {
                    prop_assert_eq!(indexes, vec![0]);
                    prop_assert_eq!((id, m), (schema_id, message.as_slice()));
                }
                Err(FramingError::OtherMessage { schema_id: id, indexes: got }) => {
                    prop_assert_eq!((id, got), (schema_id, indexes));
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn garbage_never_panics(value in prop::collection::vec(any::<u8>(), 0..32)) {
            let _ = unframe(&value);
        }
    }
}
