use super::*;

fn frame_message(w: u32, h: u32) -> Message {
    let payload = Bytes::from(vec![0u8; (w * h * 2) as usize]);
    let mut header = Header::new(Stream::TwoPhoton, Dtype::U16, &[h, w], 7, 1_000);
    header.aux = 3;
    Message { header, payload }
}

#[test]
fn header_round_trips_every_field() {
    let mut h = Header::new(Stream::TwoPhoton, Dtype::I16, &[512, 256], 42, -5);
    h.plane = 2;
    h.channel = 1;
    h.aux = 99;
    h.sent_ns = 123_456;
    h.flags = 0;
    let back = Header::decode(&h.encode()).unwrap();
    assert_eq!(back, h);
    assert_eq!(back.elements(), Some(512 * 256));
    assert_eq!(back.payload_len(), Some(512 * 256 * 2));
}

#[test]
fn message_round_trips_through_frames() {
    let m = frame_message(64, 32);
    let frames = m.clone().into_frames();
    let back = Message::parse(&frames).unwrap();
    assert_eq!(back.header, m.header);
    assert_eq!(back.payload.len(), 64 * 32 * 2);
}

#[test]
fn rejects_each_malformation_with_its_reason() {
    let good = frame_message(8, 8).into_frames();
    // wrong number of frames
    assert_eq!(
        Message::parse(&good[..2]).unwrap_err(),
        ProtocolError::FrameCount(2)
    );
    // payload size does not match the shape
    let short = [good[0].clone(), good[1].clone(), Bytes::from(vec![0u8; 10])];
    assert_eq!(Message::parse(&short).unwrap_err().label(), "payload_size");
    // garbage header
    let garbage = [
        good[0].clone(),
        Bytes::from(vec![0xAB; 64]),
        good[2].clone(),
    ];
    assert_eq!(Message::parse(&garbage).unwrap_err().label(), "bad_magic");
    let truncated = [good[0].clone(), Bytes::from(vec![0u8; 10]), good[2].clone()];
    assert_eq!(
        Message::parse(&truncated).unwrap_err(),
        ProtocolError::HeaderLength(10)
    );
    // unknown version
    let mut hdr = good[1].to_vec();
    hdr[4] = 9;
    let v9 = [good[0].clone(), Bytes::from(hdr), good[2].clone()];
    assert_eq!(
        Message::parse(&v9).unwrap_err(),
        ProtocolError::UnsupportedVersion(9)
    );
    // unknown stream
    let mut hdr = good[1].to_vec();
    hdr[6] = 200;
    let unknown = [good[0].clone(), Bytes::from(hdr), good[2].clone()];
    assert_eq!(
        Message::parse(&unknown).unwrap_err(),
        ProtocolError::UnknownStream(200)
    );
    // topic that lies about the stream
    let lying = [
        Bytes::from_static(b"eye_camera"),
        good[1].clone(),
        good[2].clone(),
    ];
    assert_eq!(
        Message::parse(&lying).unwrap_err().label(),
        "topic_mismatch"
    );
    // a dtype the stream does not carry
    let mut hdr = good[1].to_vec();
    hdr[8] = Dtype::F64 as u8;
    let f64_frame = [good[0].clone(), Bytes::from(hdr), good[2].clone()];
    assert_eq!(
        Message::parse(&f64_frame).unwrap_err().label(),
        "dtype_not_allowed"
    );
}

#[test]
fn every_code_maps_back() {
    for s in Stream::ALL {
        assert_eq!(Stream::from_code(s.code()), Some(s));
    }
    assert_eq!(Dtype::from_code(Dtype::Json as u8), Some(Dtype::Json));
    assert_eq!(SyncCode::from_code(2), Some(SyncCode::PhotodiodeRise));
}

/// A shape whose element count overflows `usize` must be refused, not wrapped: `[65536; 4]`
/// is 2^64 elements, which a wrapping product turns into 0, matching an empty payload.
#[test]
fn a_shape_that_overflows_is_refused_whatever_the_payload() {
    let mut h = Header::new(Stream::Treadmill, Dtype::I64, &[65536; 4], 0, 0);
    assert_eq!(h.elements(), None);
    assert_eq!(h.payload_len(), None);
    let frames = [
        Bytes::from_static(b"treadmill"),
        Bytes::copy_from_slice(&h.encode()),
        Bytes::new(),
    ];
    assert_eq!(
        Message::parse(&frames).unwrap_err().label(),
        "shape_overflow"
    );
    // Elements fit but bytes do not: 2^62 i64s are 2^65 bytes.
    h.shape = [1 << 31, 1 << 31, 0, 0];
    h.ndim = 2;
    assert_eq!(h.elements(), Some(1 << 62));
    assert_eq!(h.payload_len(), None);
    assert_eq!(h.check_payload(0).unwrap_err().label(), "shape_overflow");
}
