//! A private certificate authority for tests that need certificates which verify: MTA-STS
//! policy hosts and MX hosts with names the test chooses. Made with rcgen; the CA's
//! certificate goes to the node as an extra trust anchor (`queue.tls_trust_anchors_file`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA whose files live in a temporary directory.
pub struct TestCa {
    directory: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TestCa")
            .field("directory", &self.directory.path())
            .finish_non_exhaustive()
    }
}

impl TestCa {
    pub fn new() -> Result<TestCa> {
        let directory = tempfile::Builder::new().prefix("tme-ca-").tempdir()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tme test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        std::fs::write(directory.path().join("ca.pem"), issuer.pem())?;
        Ok(TestCa { directory, issuer })
    }

    /// The CA certificate (PEM), to trust.
    pub fn certificate_path(&self) -> PathBuf {
        self.directory.path().join("ca.pem")
    }

    /// Issues a certificate for `names`; returns the paths of its PEM certificate and key,
    /// named after `label`.
    pub fn issue(&self, label: &str, names: &[&str]) -> Result<(PathBuf, PathBuf)> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let key = KeyPair::generate()?;
        let certificate = CertificateParams::new(names)?
            .signed_by(&key, &self.issuer)
            .context("signing the certificate")?;
        let certificate_path = self.directory.path().join(format!("{label}.pem"));
        let key_path = self.directory.path().join(format!("{label}.key"));
        std::fs::write(&certificate_path, certificate.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok((certificate_path, key_path))
    }

    /// Installs a certificate for `names` as the node's own (`tls/certificate.pem` and
    /// `tls/private-key.pem` in `data_dir`, as `tme init` makes them).
    pub fn install(&self, data_dir: &Path, names: &[&str]) -> Result<()> {
        let (certificate, key) = self.issue("node", names)?;
        std::fs::copy(certificate, data_dir.join("tls/certificate.pem"))?;
        std::fs::copy(key, data_dir.join("tls/private-key.pem"))?;
        Ok(())
    }
}
