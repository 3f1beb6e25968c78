//! DKIM from independent tools, for tests of our verifier: an RSA key made by the `openssl`
//! command, and DKIM signatures and ARC seals made by dkimpy (Debian's `python3-dkim`, with
//! `python3-authres` for ARC, run with Debian's own `/usr/bin/python3`), so that what we
//! verify was not signed by the library we verify with.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Debian's Python, which sees Debian's `python3-dkim` (a Python from elsewhere on the path
/// may not).
const PYTHON: &str = "/usr/bin/python3";

/// Verifies every DKIM signature of standard input with dkimpy, asking the DNS server at
/// argv[1] (address) and argv[2] (port) for the keys; prints `selector pass|fail` per line.
const VERIFY_SCRIPT: &str = r#"
import re, sys, dkim, dns.flags, dns.message, dns.query
server, port = sys.argv[1], int(sys.argv[2])
def lookup(name, timeout=5):
    query = dns.message.make_query(name.decode().rstrip('.') + '.', 'TXT')
    answer = dns.query.udp(query, server, port=port, timeout=timeout)
    if answer.flags & dns.flags.TC:
        answer = dns.query.tcp(query, server, port=port, timeout=timeout)
    for rrset in answer.answer:
        for record in rrset:
            if record.rdtype == dns.rdatatype.TXT:
                return b''.join(record.strings)
    return None
message = sys.stdin.buffer.read()
verifier = dkim.DKIM(message)
header = message.split(b'\r\n\r\n')[0].replace(b'\r\n\t', b' ').replace(b'\r\n ', b'  ')
signatures = [line for line in header.split(b'\r\n') if line.lower().startswith(b'dkim-signature:')]
for index, field in enumerate(signatures):
    selector = re.search(rb'\bs=\s*([^;\s]+)', field).group(1).decode()
    try:
        ok = verifier.verify(idx=index, dnsfunc=lookup)
    except dkim.ValidationError:
        ok = False
    print(selector, 'pass' if ok else 'fail')
"#;

/// Signs standard input with dkimpy: arguments are the key file, the selector and the
/// domain; the output is the DKIM-Signature field followed by the message.
const SIGN_SCRIPT: &str = r#"
import sys, dkim
key = open(sys.argv[1], 'rb').read()
message = sys.stdin.buffer.read()
signature = dkim.sign(message, sys.argv[2].encode(), sys.argv[3].encode(), key,
    canonicalize=(b'relaxed', b'relaxed'),
    include_headers=[b'from', b'to', b'subject', b'date', b'message-id'],
    linesep=b'\r\n')
sys.stdout.buffer.write(signature + message)
"#;

/// Seals standard input as an ARC intermediary with dkimpy (RFC 8617 §5.1): arguments are
/// the key file, the selector, the domain and the sealer's authserv-id, whose
/// `Authentication-Results` the message must carry; the output is the ARC set followed by
/// the message.
const ARC_SEAL_SCRIPT: &str = r#"
import sys, dkim
key = open(sys.argv[1], 'rb').read()
message = sys.stdin.buffer.read()
headers = dkim.arc_sign(message, sys.argv[2].encode(), sys.argv[3].encode(), key,
    sys.argv[4].encode(),
    include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
sys.stdout.buffer.write(b''.join(headers) + message)
"#;

/// A 2048-bit RSA signing key in a temporary directory.
#[derive(Debug)]
pub struct DkimKey {
    directory: tempfile::TempDir,
    /// The public key as DKIM's `p=` wants it: base64 of the DER SubjectPublicKeyInfo.
    public_key_base64: String,
}

impl DkimKey {
    pub fn generate() -> Result<DkimKey> {
        let directory = tempfile::Builder::new().prefix("tme-dkim-").tempdir()?;
        let private_key = directory.path().join("private-key.pem");
        // PKCS #1 ("traditional"), the form every dkimpy version reads.
        run(Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&private_key)
            .arg("2048"))?;
        let public_der = run(Command::new("openssl")
            .args(["rsa", "-pubout", "-outform", "DER", "-in"])
            .arg(&private_key))?;
        let mut encoder = Command::new("openssl")
            .args(["base64", "-A"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run openssl (scripts/test.sh installs it)")?;
        if let Some(mut input) = encoder.stdin.take() {
            input.write_all(&public_der)?;
        }
        let output = encoder.wait_with_output()?;
        if !output.status.success() {
            bail!("openssl base64 failed");
        }
        Ok(DkimKey {
            directory,
            public_key_base64: String::from_utf8(output.stdout)?.trim().to_owned(),
        })
    }

    /// The key record's data for a zone file (`sel._domainkey.example.test. TXT <this>`),
    /// cut into strings of at most 255 octets (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2 joins
    /// them).
    pub fn txt_record(&self) -> String {
        let text = format!("v=DKIM1; k=rsa; p={}", self.public_key_base64);
        text.as_bytes()
            .chunks(255)
            .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The message with a DKIM-Signature by dkimpy for `domain` and `selector` on top
    /// (relaxed/relaxed, covering From, To, Subject, Date and Message-ID).
    pub fn sign(&self, message: &[u8], domain: &str, selector: &str) -> Result<Vec<u8>> {
        self.dkimpy(SIGN_SCRIPT, message, &[selector, domain])
    }

    /// The message with an ARC set (ARC-Seal, ARC-Message-Signature,
    /// ARC-Authentication-Results) by dkimpy on top, sealed for `domain` and `selector` by
    /// the intermediary `authserv_id`; the message must carry that intermediary's
    /// `Authentication-Results`.
    pub fn arc_seal(
        &self,
        message: &[u8],
        domain: &str,
        selector: &str,
        authserv_id: &str,
    ) -> Result<Vec<u8>> {
        self.dkimpy(ARC_SEAL_SCRIPT, message, &[selector, domain, authserv_id])
    }

    fn dkimpy(&self, script: &str, message: &[u8], arguments: &[&str]) -> Result<Vec<u8>> {
        let mut signer = Command::new(PYTHON)
            .arg("-c")
            .arg(script)
            .arg(self.directory.path().join("private-key.pem"))
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run /usr/bin/python3 (scripts/test.sh installs python3-dkim)")?;
        if let Some(mut input) = signer.stdin.take() {
            input.write_all(message)?;
        }
        let output = signer.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "dkimpy failed (scripts/test.sh installs python3-dkim and python3-authres): {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output.stdout)
    }
}

fn run(command: &mut Command) -> Result<Vec<u8>> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .context("cannot run openssl (scripts/test.sh installs it)")?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// Verifies every DKIM signature of `message` with dkimpy, the keys read from the DNS
/// server at `nameserver`: one `(selector, passed)` per signature, in order.
pub fn verify_with_dns(
    message: &[u8],
    nameserver: std::net::SocketAddr,
) -> Result<Vec<(String, bool)>> {
    let mut verifier = Command::new(PYTHON)
        .arg("-c")
        .arg(VERIFY_SCRIPT)
        .arg(nameserver.ip().to_string())
        .arg(nameserver.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run /usr/bin/python3 (scripts/test.sh installs python3-dkim)")?;
    if let Some(mut input) = verifier.stdin.take() {
        input.write_all(message)?;
    }
    let output = verifier.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "dkimpy failed to verify: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (selector, verdict) = line.split_once(' ')?;
            Some((selector.to_owned(), verdict == "pass"))
        })
        .collect())
}
