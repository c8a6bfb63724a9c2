//! `multipart/form-data` bodies (RFC 7578) for the CDR push: named parts,
//! each with a filename and a content type, under a random boundary.

/// A body being built.
pub struct Multipart {
    boundary: String,
    body: Vec<u8>,
}

impl Multipart {
    pub fn new() -> Multipart {
        let mut raw = [0u8; 12];
        // A fixed boundary would still be unambiguous for our own JSON, but
        // not for arbitrary WAV bytes; randomness makes a collision hopeless.
        if getrandom::getrandom(&mut raw).is_err() {
            raw = *b"shardpbx-cdr";
        }
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        Multipart {
            boundary: format!("shardpbx-{hex}"),
            body: Vec::new(),
        }
    }

    /// Adds a part. `name` and `filename` are ours (no quotes or line breaks).
    pub fn part(&mut self, name: &str, filename: &str, content_type: &str, data: &[u8]) {
        let head = format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            self.boundary,
            clean(name),
            clean(filename),
            content_type
        );
        self.body.extend_from_slice(head.as_bytes());
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\r\n");
    }

    /// The `Content-Type` header value and the finished body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.body,
        )
    }
}

impl Default for Multipart {
    fn default() -> Self {
        Multipart::new()
    }
}

/// A header parameter value without the characters that would end it.
fn clean(v: &str) -> String {
    v.chars()
        .filter(|c| !matches!(c, '"' | '\r' | '\n' | '\\'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_framed_by_the_boundary() {
        let mut m = Multipart::new();
        m.part("calllog.json", "calllog.json", "application/json", b"{}");
        m.part("media_audio-0", "a\"b\r\n.wav", "audio/wav", &[0, 1, 2]);
        let (ct, body) = m.finish();
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 2);
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        assert!(text.contains("name=\"calllog.json\"; filename=\"calllog.json\"\r\nContent-Type: application/json\r\n\r\n{}\r\n"));
        assert!(text.contains("filename=\"ab.wav\""));
        assert_ne!(Multipart::new().boundary, Multipart::new().boundary);
    }
}
