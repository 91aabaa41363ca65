//! A peer that closes its end of the channel socket with bytes still unread
//! makes Linux report `ECONNRESET` instead of end of stream. The frame
//! readers treat that as the close it is: what was sent before is read, a
//! close on a frame boundary is a clean end, and a close inside a frame is
//! `Truncated` (the host's "closed inside a frame"), never an i/o error.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use bulkhead_ipc::frame::encode_frame;
use bulkhead_ipc::{
    AsyncFrameReader, DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader, HostMessage,
};

const MAX: usize = DEFAULT_MAX_FRAME_BYTES;

/// A reader's end whose peer wrote `bytes` and then closed with a byte of
/// ours unread: the reset case.
fn reset_after(bytes: &[u8]) -> UnixStream {
    let (mut peer, mut ours) = UnixStream::pair().expect("socketpair");
    ours.write_all(b"x").expect("write");
    peer.write_all(bytes).expect("write");
    drop(peer);
    ours
}

fn one_frame() -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame(&HostMessage::Cancel, &mut frame, MAX).expect("encode");
    frame
}

#[test]
fn the_premise_a_plain_read_after_the_data_is_a_reset() {
    let mut ours = reset_after(b"ab");
    let mut buf = [0u8; 8];
    assert_eq!(ours.read(&mut buf).expect("data first"), 2);
    let err = ours.read(&mut buf).expect_err("then the reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn blocking_reader_reset_on_a_boundary_is_a_clean_end() {
    let mut reader = FrameReader::new(reset_after(&one_frame()), MAX);
    assert_eq!(
        reader.read::<HostMessage>().unwrap(),
        Some(HostMessage::Cancel)
    );
    assert_eq!(reader.read::<HostMessage>().unwrap(), None);
}

#[test]
fn blocking_reader_reset_inside_a_frame_is_truncated() {
    let frame = one_frame();
    let mut reader = FrameReader::new(reset_after(&frame[..frame.len() - 1]), MAX);
    let err = reader.read::<HostMessage>().unwrap_err();
    assert!(matches!(err, FrameError::Truncated { .. }), "{err:?}");
}

#[tokio::test]
async fn async_reader_reset_is_a_clean_end_or_truncated() {
    let frame = one_frame();
    for (bytes, whole) in [
        (frame.clone(), true),
        (frame[..frame.len() - 1].to_vec(), false),
    ] {
        let ours = reset_after(&bytes);
        ours.set_nonblocking(true).expect("nonblocking");
        let ours = tokio::net::UnixStream::from_std(ours).expect("register");
        let mut reader = AsyncFrameReader::new(ours, MAX);
        if whole {
            assert_eq!(
                reader.read::<HostMessage>().await.unwrap(),
                Some(HostMessage::Cancel)
            );
            assert_eq!(reader.read::<HostMessage>().await.unwrap(), None);
        } else {
            let err = reader.read::<HostMessage>().await.unwrap_err();
            assert!(matches!(err, FrameError::Truncated { .. }), "{err:?}");
        }
    }
}
