//! Just enough WebSocket framing (RFC 6455 §5.2) to end a tunnel cleanly.
//!
//! greenlight never parses or changes WebSocket traffic, except at one moment:
//! when a drain deadline ends an upgraded connection, the client should get a
//! Close frame with code 1001 (Going Away) so that it reconnects — to the new
//! pool. The frame may only be inserted between two server frames, so
//! [`FrameTracker`] follows frame boundaries of the server-to-client bytes
//! (headers only; payloads are skipped by length, never copied). The app
//! gets a masked Close 1001 too, between two client frames, when greenlight's
//! tunnel task ends the connection (see `tunnel.rs`).

/// An unmasked server Close frame carrying status 1001 (Going Away).
pub const CLOSE_GOING_AWAY: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];

/// A client Close frame carrying status 1001 (Going Away), masked with
/// `mask` as every client-to-server frame must be (RFC 6455 §5.3): the proxy
/// is the client of the app.
pub fn close_going_away_masked(mask: [u8; 4]) -> [u8; 8] {
    let code = [CLOSE_GOING_AWAY[2], CLOSE_GOING_AWAY[3]];
    [
        0x88,
        0x82,
        mask[0],
        mask[1],
        mask[2],
        mask[3],
        code[0] ^ mask[0],
        code[1] ^ mask[1],
    ]
}

/// Follows frame boundaries in a WebSocket byte stream (either direction:
/// masked frames have four more header bytes).
#[derive(Debug, Default, Clone)]
pub struct FrameTracker {
    header: [u8; 14],
    header_len: usize,
    payload_left: u64,
    /// Once lost (unparseable), never claim a boundary again.
    lost: bool,
    /// A Close frame went by: nothing, not even another Close, may follow
    /// (RFC 6455 §5.5.1).
    close_seen: bool,
}

impl FrameTracker {
    /// Feeds the next bytes the server sent.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.lost {
            if self.payload_left > 0 {
                let n = (data.len() as u64).min(self.payload_left) as usize;
                self.payload_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let Some(slot) = self.header.get_mut(self.header_len) else {
                self.lost = true;
                return;
            };
            *slot = data[0];
            self.header_len += 1;
            data = &data[1..];
            if let Some((need, payload)) = self.header_complete()
                && need == self.header_len
            {
                self.close_seen |= self.header[0] & 0x0F == 0x8;
                self.payload_left = payload;
                self.header_len = 0;
            }
        }
    }

    /// Returns (header length, payload length) once enough header bytes are in.
    fn header_complete(&mut self) -> Option<(usize, u64)> {
        if self.header_len < 2 {
            return None;
        }
        let masked = self.header[1] & 0x80 != 0;
        let mask_len = if masked { 4 } else { 0 };
        let (base, ext) = match self.header[1] & 0x7F {
            126 => (4, 2),
            127 => (10, 8),
            n => return Some((2 + mask_len, u64::from(n))),
        };
        if self.header_len < base {
            return None;
        }
        let mut len: u64 = 0;
        for b in &self.header[2..2 + ext] {
            len = (len << 8) | u64::from(*b);
        }
        if len > (1 << 62) {
            self.lost = true;
        }
        Some((base + mask_len, len))
    }

    /// True when the next byte would start a new frame.
    pub fn at_boundary(&self) -> bool {
        !self.lost && self.header_len == 0 && self.payload_left == 0
    }

    /// True when a Close frame may be inserted now: at a boundary, and this
    /// direction has not carried a Close already.
    pub fn can_insert_close(&self) -> bool {
        self.at_boundary() && !self.close_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_found_across_split_frames() {
        let mut t = FrameTracker::default();
        assert!(t.at_boundary());
        // "hello" text frame, split inside the header and the payload.
        let frame = [0x81, 0x05, b'h', b'e', b'l', b'l', b'o'];
        t.feed(&frame[..1]);
        assert!(!t.at_boundary());
        t.feed(&frame[1..4]);
        assert!(!t.at_boundary());
        t.feed(&frame[4..]);
        assert!(t.at_boundary());
        // A 300-byte binary frame uses the 16-bit length form.
        let mut big = vec![0x82, 126, 0x01, 0x2C];
        big.extend(std::iter::repeat_n(7u8, 300));
        t.feed(&big[..200]);
        assert!(!t.at_boundary());
        t.feed(&big[200..]);
        assert!(t.at_boundary());
        // Two frames in one read.
        t.feed(&[0x89, 0x00, 0x8A, 0x01, 0x00]);
        assert!(t.at_boundary());
    }

    #[test]
    fn masked_client_frames_have_their_boundaries_found_too() {
        let mut t = FrameTracker::default();
        // A masked 5-byte text frame: 2 header bytes, a 4-byte key, payload.
        let frame = [0x81, 0x85, 1, 2, 3, 4, 9, 9, 9, 9, 9];
        t.feed(&frame[..6]);
        assert!(!t.at_boundary(), "inside the key");
        t.feed(&frame[6..10]);
        assert!(!t.at_boundary(), "inside the payload");
        t.feed(&frame[10..]);
        assert!(t.at_boundary());
        assert!(t.can_insert_close());
        // After the client's own Close, no other may follow.
        t.feed(&close_going_away_masked([5, 6, 7, 8]));
        assert!(t.at_boundary() && !t.can_insert_close());
    }

    #[test]
    fn the_masked_close_frame_unmasks_to_1001_and_is_one_frame() {
        let f = close_going_away_masked([0x12, 0x34, 0x56, 0x78]);
        assert_eq!(f[0], 0x88, "FIN + Close");
        assert_eq!(f[1], 0x82, "masked, 2 bytes");
        assert_eq!(u16::from_be_bytes([f[6] ^ f[2], f[7] ^ f[3]]), 1001);
        let mut t = FrameTracker::default();
        t.feed(&f[..5]);
        assert!(!t.at_boundary());
        t.feed(&f[5..]);
        assert!(t.at_boundary());
    }

    #[test]
    fn the_close_frame_says_going_away() {
        assert_eq!(
            u16::from_be_bytes([CLOSE_GOING_AWAY[2], CLOSE_GOING_AWAY[3]]),
            1001
        );
    }
}
