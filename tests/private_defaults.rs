//! Defaults safe to expose, through the real binary: a memory user with
//! `generate_password = true` (as the shipped 1001 and 1002 are) gets a
//! random password on first start, kept in `data_dir/generated-passwords`
//! with mode 0600 and reused after a restart; the well-known password of
//! the old sample config no longer registers; data_dir is made (or
//! tightened to) 0700 and a recording is 0600 in 0700 directories.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::media::*;
use common::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The password of `user` in the generated-passwords file.
fn generated(file: &Path, user: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{user} ")))
        .unwrap_or_else(|| panic!("no {user} in\n{text}"))
        .trim()
        .to_string()
}

#[test]
fn generated_sample_passwords_are_private_and_the_well_known_ones_fail() {
    let mut pbx = Pbx::start(PbxOptions {
        extra_tables: "[recording]\nenabled = true\n".into(),
        ..PbxOptions::default()
    });
    let data = pbx.dir().join("data");
    let file = data.join("generated-passwords");
    assert!(
        !file.exists(),
        "nothing generated without generate_password"
    );
    // 1002 as the shipped config has it: no password in the file.
    let text = std::fs::read_to_string(&pbx.config).unwrap();
    let text = text.replace(
        "{ username = \"1002\", password = \"secret1002\" }",
        "{ username = \"1002\", generate_password = true }",
    );
    assert!(text.contains("generate_password"));
    std::fs::write(&pbx.config, text).unwrap();
    // A data_dir someone opened up (or an older version made) is closed again.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    pbx.restart();

    assert_eq!(mode(&data), 0o700, "data_dir");
    assert_eq!(mode(&file), 0o600, "generated-passwords");
    let pw = generated(&file, "1002");
    assert!(pw.len() >= 26, "{pw}: at least 128 bits in base32");
    assert_ne!(pw, "secret1002");
    let log = pbx.log_text();
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(!log.contains(&pw), "the password is in the log");

    // The password everybody knows from the repository: refused.
    let uac = Uac::new(pbx.sip);
    let r = register_with_auth(
        &uac,
        "1002",
        "secret1002",
        "well-known@test",
        1,
        &format!("<sip:1002@{}>", uac.local),
        Some(600),
    );
    assert_eq!(r.code, 403, "{}", r.raw);
    // The generated one registers, and 1002 takes a recorded call.
    let mut phone = Phone::register(&pbx, "1002", &pw);
    call_with_tones(&pbx, &mut phone, "private-rec@test", 10);
    let cdr = wait_cdr(&pbx, "private-rec@test");
    let rec = cdr["recorder"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|r| r["path"].as_str())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no recording in {cdr}"));
    let rec = if rec.is_absolute() {
        rec
    } else {
        data.join(rec)
    };
    assert_eq!(mode(&rec), 0o600, "{}", rec.display());
    assert_eq!(mode(rec.parent().unwrap()), 0o700);
    assert_eq!(mode(&data.join("recordings")), 0o700);
    for f in ["data.mdb", "lock.mdb"] {
        assert_eq!(mode(&data.join("lmdb").join(f)) & 0o077, 0, "{f}");
    }

    // Kept across a restart: the phone's password does not change under it.
    pbx.restart();
    assert_eq!(generated(&file, "1002"), pw);
    assert_eq!(mode(&file), 0o600);
    let _again = Phone::register(&pbx, "1002", &pw);
}
