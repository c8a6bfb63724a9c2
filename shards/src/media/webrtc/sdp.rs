//! The WebRTC attributes of one audio m-section and the session level, as
//! pure functions: owns reading the peer's ICE credentials, DTLS
//! fingerprint (sha-256), `a=setup`, `a=rtcp-mux`, `a=mid` and `a=ice-lite`
//! ([`parse_remote`]), writing ours ([`write_session`], [`write_media`]),
//! and making our ICE credentials ([`IceCreds::random`]). The rest of the
//! SDP (addresses, codecs, rewriting) is `media::sdp`'s.

use std::fmt;
use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use super::dtls::Role;

/// The ICE character set (RFC 8445 section 15.4): 64 characters, so one
/// random byte's low 6 bits pick one without bias.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// Lengths of the credentials we make (RFC 8445 asks for at least 24 bits
/// of ufrag and 128 of pwd: 48 and 144 here).
const UFRAG_LEN: usize = 8;
const PWD_LEN: usize = 24;
/// Bounds on the peer's credentials (RFC 8839: ufrag 4..=256, pwd 22..=256).
const UFRAG_BOUNDS: (usize, usize) = (4, 256);
const PWD_BOUNDS: (usize, usize) = (22, 256);
/// Longest `a=mid` accepted.
const MAX_MID_LEN: usize = 64;

fn is_ice_string(s: &str, (min, max): (usize, usize)) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| ICE_CHARS.contains(&b))
}

/// RFC 4566 token characters, as `a=mid` uses.
fn is_token(s: &str) -> bool {
    (1..=MAX_MID_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b))
}

/// ICE credentials (`a=ice-ufrag`, `a=ice-pwd`). `Debug` hides the pwd.
#[derive(Clone, PartialEq, Eq)]
pub struct IceCreds {
    ufrag: String,
    pwd: String,
}

impl IceCreds {
    /// Fresh credentials: an 8-character ufrag and a 24-character pwd from
    /// `rng` (which fills the slice it is given, as for
    /// `srtp::MasterKey::random`).
    pub fn random(rng: &mut impl FnMut(&mut [u8])) -> IceCreds {
        let mut bytes = [0u8; UFRAG_LEN + PWD_LEN];
        rng(&mut bytes);
        let mut chars = bytes
            .iter()
            .map(|b| char::from(ICE_CHARS[usize::from(b & 63)]));
        IceCreds {
            ufrag: chars.by_ref().take(UFRAG_LEN).collect(),
            pwd: chars.collect(),
        }
    }

    /// Credentials as given; `None` unless both are ICE strings within the
    /// bounds (ufrag 4..=256 characters, pwd 22..=256).
    pub fn new(ufrag: &str, pwd: &str) -> Option<IceCreds> {
        (is_ice_string(ufrag, UFRAG_BOUNDS) && is_ice_string(pwd, PWD_BOUNDS)).then(|| IceCreds {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
        })
    }

    /// The username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// The password.
    pub fn pwd(&self) -> &str {
        &self.pwd
    }
}

impl fmt::Debug for IceCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceCreds")
            .field("ufrag", &self.ufrag)
            .finish_non_exhaustive()
    }
}

/// A certificate's SHA-256 fingerprint (RFC 8122). `Display` gives the
/// `a=fingerprint` value: `sha-256 AB:CD:...`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Reads an `a=fingerprint` value: `Some` only for `sha-256` (any
    /// case) followed by 32 colon-separated hex octets (any case).
    pub fn parse(value: &str) -> Option<Fingerprint> {
        let (algo, hex) = value.trim().split_once(' ')?;
        if !algo.eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let mut out = [0u8; 32];
        let mut octets = hex.trim().split(':');
        for o in &mut out {
            let h = octets.next()?;
            if h.len() != 2 {
                return None;
            }
            *o = u8::from_str_radix(h, 16).ok()?;
        }
        octets.next().is_none().then_some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha-256 ")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// `a=setup` (RFC 4145, RFC 5763): who opens the DTLS association.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// `actpass`: either (what an offer says).
    ActPass,
    /// `active`: the DTLS client.
    Active,
    /// `passive`: the DTLS server.
    Passive,
}

impl Setup {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::ActPass => "actpass",
            Setup::Active => "active",
            Setup::Passive => "passive",
        }
    }

    fn parse(s: &str) -> Option<Setup> {
        [Setup::ActPass, Setup::Active, Setup::Passive]
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Our DTLS role when the peer says `self`: we are the server unless
    /// the peer is `passive` (to its `actpass` offer we answer `passive`;
    /// its `active` answer to our `actpass` offer leaves us the server).
    pub fn our_role(self) -> Role {
        match self {
            Setup::ActPass | Setup::Active => Role::Server,
            Setup::Passive => Role::Client,
        }
    }
}

/// What the peer's SDP says about its end of the leg.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteParams {
    /// Its ICE credentials.
    pub creds: IceCreds,
    /// Its certificate's SHA-256 fingerprint.
    pub fingerprint: Fingerprint,
    /// Its `a=setup` (`active` when absent, RFC 4145 section 4).
    pub setup: Setup,
    /// `a=rtcp-mux` in the media section.
    pub rtcp_mux: bool,
    /// `a=mid` of the media section.
    pub mid: Option<String>,
    /// `a=ice-lite` (session or media level): the peer sends no checks.
    pub ice_lite: bool,
}

impl fmt::Debug for RemoteParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteParams")
            .field("creds", &self.creds)
            .field("fingerprint", &self.fingerprint)
            .field("setup", &self.setup)
            .field("rtcp_mux", &self.rtcp_mux)
            .field("mid", &self.mid)
            .field("ice_lite", &self.ice_lite)
            .finish()
    }
}

/// Why the peer's WebRTC attributes are unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamsError {
    /// No `m=audio` section.
    NoAudio,
    /// `a=ice-ufrag` missing, or not 4..=256 ICE characters.
    Ufrag,
    /// `a=ice-pwd` missing, or not 22..=256 ICE characters.
    Pwd,
    /// No well-formed `sha-256` `a=fingerprint`.
    Fingerprint,
    /// `a=setup` other than actpass, active or passive.
    Setup,
    /// `a=mid` not a token of at most 64 characters.
    Mid,
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamsError::NoAudio => "no audio m-section",
            ParamsError::Ufrag => "missing or invalid a=ice-ufrag",
            ParamsError::Pwd => "missing or invalid a=ice-pwd",
            ParamsError::Fingerprint => "no valid sha-256 a=fingerprint",
            ParamsError::Setup => "invalid a=setup",
            ParamsError::Mid => "invalid a=mid",
        })
    }
}

impl std::error::Error for ParamsError {}

/// The attributes of one level (session or media) of interest here.
#[derive(Default)]
struct Level<'a> {
    ufrag: Option<&'a str>,
    pwd: Option<&'a str>,
    fingerprint: Option<Fingerprint>,
    setup: Option<&'a str>,
    rtcp_mux: bool,
    mid: Option<&'a str>,
    ice_lite: bool,
}

impl<'a> Level<'a> {
    fn read(lines: impl Iterator<Item = &'a str>) -> Level<'a> {
        let mut l = Level::default();
        for line in lines {
            let Some(attr) = line.strip_prefix("a=") else {
                continue;
            };
            let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
            let value = value.trim();
            match name.trim() {
                "ice-ufrag" => l.ufrag = l.ufrag.or(Some(value)),
                "ice-pwd" => l.pwd = l.pwd.or(Some(value)),
                "fingerprint" => l.fingerprint = l.fingerprint.or(Fingerprint::parse(value)),
                "setup" => l.setup = l.setup.or(Some(value)),
                "rtcp-mux" => l.rtcp_mux = true,
                "mid" => l.mid = l.mid.or(Some(value)),
                "ice-lite" => l.ice_lite = true,
                _ => {}
            }
        }
        l
    }
}

/// Reads the peer's WebRTC parameters from an SDP body: the session level
/// (the lines before the first `m=`) and the first `m=audio` section (its
/// `m=` line up to the next `m=`); lines end in CRLF or LF. A media-level
/// attribute overrides the session-level one; for each attribute the first
/// occurrence counts. Only `sha-256` fingerprints are read (others are
/// ignored); without one the parameters are invalid.
pub fn parse_remote(body: &str) -> Result<RemoteParams, ParamsError> {
    let lines = || body.lines().map(|l| l.trim_end_matches('\r'));
    let session = Level::read(lines().take_while(|l| !l.starts_with("m=")));
    let media = Level::read(
        lines()
            .skip_while(|l| !l.starts_with("m=audio"))
            .enumerate()
            .take_while(|(i, l)| *i == 0 || !l.starts_with("m="))
            .map(|(_, l)| l),
    );
    if !lines().any(|l| l.starts_with("m=audio")) {
        return Err(ParamsError::NoAudio);
    }
    let ufrag = media.ufrag.or(session.ufrag).ok_or(ParamsError::Ufrag)?;
    if !is_ice_string(ufrag, UFRAG_BOUNDS) {
        return Err(ParamsError::Ufrag);
    }
    let pwd = media.pwd.or(session.pwd).ok_or(ParamsError::Pwd)?;
    let creds = IceCreds::new(ufrag, pwd).ok_or(ParamsError::Pwd)?;
    let fingerprint = media
        .fingerprint
        .or(session.fingerprint)
        .ok_or(ParamsError::Fingerprint)?;
    let setup = match media.setup.or(session.setup) {
        None => Setup::Active,
        Some(s) => Setup::parse(s).ok_or(ParamsError::Setup)?,
    };
    let mid = match media.mid {
        None => None,
        Some(m) if is_token(m) => Some(m.to_owned()),
        Some(_) => return Err(ParamsError::Mid),
    };
    Ok(RemoteParams {
        creds,
        fingerprint,
        setup,
        rtcp_mux: media.rtcp_mux,
        mid,
        ice_lite: session.ice_lite || media.ice_lite,
    })
}

/// Our session-level WebRTC attribute: `a=ice-lite` (we answer checks and
/// never send any).
pub fn write_session(out: &mut String) {
    out.push_str("a=ice-lite\r\n");
}

/// What we say about our end of the leg in the audio m-section.
#[derive(Clone, Copy, Debug)]
pub struct LocalParams<'a> {
    /// Our ICE credentials.
    pub creds: &'a IceCreds,
    /// Our certificate's fingerprint (`Identity::fingerprint`).
    pub fingerprint: &'a Fingerprint,
    /// `actpass` in an offer; in an answer, `Role::setup` of our role.
    pub setup: Setup,
    /// The `a=mid` to echo (the peer's, in an answer); written only if it
    /// is a token of at most 64 characters.
    pub mid: Option<&'a str>,
    /// Our one host candidate: the relay's address and port of this leg.
    pub candidate: SocketAddr,
}

/// Appends our media-level WebRTC attributes (CRLF-terminated):
/// `a=ice-ufrag`, `a=ice-pwd`, `a=fingerprint`, `a=setup`, `a=mid`,
/// `a=rtcp-mux`, one host candidate, `a=end-of-candidates`.
pub fn write_media(out: &mut String, local: &LocalParams<'_>) {
    use fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:{}\r\n",
        local.creds.ufrag,
        local.creds.pwd,
        local.fingerprint,
        local.setup.as_str()
    );
    if let Some(mid) = local.mid.filter(|m| is_token(m)) {
        let _ = write!(out, "a=mid:{mid}\r\n");
    }
    let _ = write!(
        out,
        "a=rtcp-mux\r\na=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
        local.candidate.ip().to_canonical(),
        local.candidate.port()
    );
}
