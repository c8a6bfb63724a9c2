//! Debian's baresip as a stock softphone peer: headless (`aufile` plays a
//! tone WAV into the call, `sndfile` dumps what it hears), registered over
//! UDP or over TLS, and what it heard read back.

use std::path::Path;

use super::media::goertzel;
use super::{Pbx, Peer};

/// How a baresip reaches the PBX.
pub enum Via {
    /// UDP to the PBX's SIP port, plain RTP.
    Udp,
    /// TLS to this port (verifying the PBX's self-signed certificate),
    /// SRTP mandatory.
    TlsSrtp(u16),
}

/// 8 kHz mono 16-bit WAV of `secs` seconds of `hz` (what baresip's aufile
/// plays into the call); `rate` other than 8000 for a browser's fake
/// microphone.
pub fn write_tone_wav(path: &Path, hz: f64, secs: usize, rate: u32) {
    let n = rate as usize * secs;
    let mut b = Vec::with_capacity(44 + 2 * n);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + 2 * n as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(2 * rate).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(2 * n as u32).to_le_bytes());
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let s = (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

/// A headless baresip in `dir`: `user` (password `secret<user>`) reaching
/// the PBX as `via` says, PCMU only, playing a tone of `hz` and dumping
/// what it hears (sndfile) in `dir`; `account` adds account parameters
/// (`;answermode=auto`); runs `commands` at start; quits after 60 s at the
/// latest.
pub fn start(
    pbx: &Pbx,
    via: Via,
    dir: &Path,
    user: &str,
    hz: f64,
    account: &str,
    commands: &[&str],
) -> Peer {
    std::fs::create_dir_all(dir).unwrap();
    let tone = dir.join("tone.wav");
    write_tone_wav(&tone, hz, 60, 8000);
    let ca = pbx.dir().join("data/tls/self-signed.crt");
    let srtp = match via {
        Via::Udp => "",
        Via::TlsSrtp(_) => "module srtp.so\n",
    };
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:0\nnet_interface 127.0.0.1\nsip_cafile {ca}\n\
             audio_player aubridge,nil\naudio_source aufile,{tone}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
             module aubridge.so\nmodule sndfile.so\nsnd_path {dir}\n{srtp}\
             module_app account.so\nmodule_app menu.so\n",
            ca = ca.display(),
            tone = tone.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    let outbound = match via {
        Via::Udp => format!("outbound=\"sip:{}\"", pbx.sip),
        Via::TlsSrtp(port) => {
            format!("outbound=\"sip:127.0.0.1:{port};transport=tls\";mediaenc=srtp-mand")
        }
    };
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{user}@127.0.0.1>;auth_pass=secret{user};{outbound};regint=60;audio_codecs=PCMU{account}\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
    let mut cmd = std::process::Command::new("baresip");
    cmd.arg("-f").arg(dir).args(["-s", "-t", "60"]);
    for c in commands {
        cmd.args(["-e", c]);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(|c| Peer(Some(c)))
        .expect("baresip (scripts/install-deps.sh installs baresip-core)")
}

/// baresip's log in `dir`.
pub fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default()
}

/// The samples of an 8 kHz mono 16-bit WAV (what baresip's sndfile dumps).
pub fn wav_mono(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap();
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk");
    bytes[data + 8..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// What baresip in `dir` heard (its sndfile decode dump).
pub fn heard_by(dir: &Path) -> Vec<i16> {
    let dump = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("no decode dump in {}:\n{}", dir.display(), log_of(dir)));
    wav_mono(&dump)
}

/// The middle half of `samples` is a tone of `hz`, not of `not`.
pub fn tone_is(samples: &[i16], hz: f64, not: f64) -> bool {
    let mid = &samples[samples.len() / 4..samples.len() * 3 / 4];
    samples.len() > 800 && goertzel(mid, hz) > 100.0 * goertzel(mid, not)
}
