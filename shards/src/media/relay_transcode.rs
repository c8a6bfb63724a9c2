//! The relay's transcoding, when the two sides of a call share no codec
//! (`media::bridge` decides): one [`Transcoder`] per direction on the side
//! that sends, a packet budget per side, and the step of `on_datagram`
//! that rewrites a packet between decryption and encryption.

use super::{MediaRelay, RelayCounters, Side, SideCodec, SideState, Transcoder};

impl MediaRelay {
    /// The codecs `side` of session `id` signalled last: (payload type,
    /// name, clock).
    pub fn codecs_of(&self, id: u64, side: Side) -> Vec<(u8, String, u32)> {
        self.sessions
            .get(&id)
            .map(|s| s.sides[side as usize].sig.codecs.clone())
            .unwrap_or_default()
    }

    /// Session `id` transcodes between the caller's codec and the
    /// callee's (`pair`), or no longer (`None`). False when the pair
    /// cannot be transcoded (the session is left as it was).
    pub fn set_transcoding(&mut self, id: u64, pair: Option<(SideCodec, SideCodec)>) -> bool {
        let Some(s) = self.sessions.get_mut(&id) else {
            return false;
        };
        s.take_back_both(&mut self.fast, &mut self.counters);
        let Some((caller, callee)) = pair else {
            for side in &mut s.sides {
                side.transcode = None;
            }
            return true;
        };
        match (
            Transcoder::new(caller, callee),
            Transcoder::new(callee, caller),
        ) {
            (Ok(up), Ok(down)) => {
                s.sides[Side::Caller as usize].transcode = Some(Box::new(up));
                s.sides[Side::Callee as usize].transcode = Some(Box::new(down));
                true
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(call_id = %s.call_id, "cannot transcode: {e}");
                false
            }
        }
    }
}

/// Transcodes `buf[..len]` from `from` for the other side when the call is
/// transcoded: the new length, or `None` (counted) for a packet over the
/// side's budget, not of the transcoded codec (DTMF, comfort noise) or not
/// decodable (the other side could not play it).
pub(super) fn transcode_with(
    counters: &mut RelayCounters,
    from: &mut SideState,
    now_ms: u64,
    buf: &mut [u8],
    len: usize,
) -> Option<usize> {
    let Some(t) = from.transcode.as_mut() else {
        return Some(len);
    };
    let out = if from.transcode_budget.take(now_ms) {
        t.transcode(buf, len)
    } else {
        None
    };
    if out.is_none() {
        counters.untranscodable += 1;
        counters.rejected += 1;
    }
    out
}
