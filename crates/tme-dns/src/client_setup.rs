//! The documents that go with the DNS names each domain gets, served over HTTP by the `http`
//! role: the MTA-STS policy (RFC 8461 §3.2, `ZoneSettings::mta_sts_policy`), Thunderbird's
//! autoconfig file, Outlook's autodiscover answer and an Apple configuration profile. Each
//! tells a mail client the servers of `ZoneSettings::client_host` on the implicit-TLS ports
//! (RFC 8314) of `dns.client_ports`: IMAP 993, POP3 995, submission 465 unless configured
//! otherwise. Text in, text out; no I/O.

use crate::zone::ZoneSettings;

/// The longest autodiscover request body read (a real one is under a kilobyte).
pub const AUTODISCOVER_REQUEST_OCTETS_MAX: usize = 16 * 1024;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn host(settings: &ZoneSettings) -> String {
    settings
        .client_host
        .to_ascii()
        .trim_end_matches('.')
        .to_owned()
}

/// Thunderbird's autoconfig file (the "clientConfig" format, version 1.1) for `domain`.
pub fn thunderbird_autoconfig(settings: &ZoneSettings, domain: &str, display_name: &str) -> String {
    let host = escape(&host(settings));
    let domain = escape(domain);
    let display_name = escape(display_name);
    let ports = settings.client_ports;
    let (imaps, pop3s, submissions) = (ports.imaps, ports.pop3s, ports.submissions);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{domain}">
    <domain>{domain}</domain>
    <displayName>{display_name}</displayName>
    <displayShortName>{display_name}</displayShortName>
    <incomingServer type="imap">
      <hostname>{host}</hostname>
      <port>{imaps}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>{host}</hostname>
      <port>{pop3s}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{host}</hostname>
      <port>{submissions}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"#
    )
}

/// The address an Outlook autodiscover request asks about (its `EMailAddress` element).
pub fn autodiscover_request_address(body: &str) -> Option<String> {
    let start = body.find("<EMailAddress>")? + "<EMailAddress>".len();
    let end = start + body[start..].find("</EMailAddress>")?;
    let address = body[start..end].trim();
    (!address.is_empty() && address.len() <= 320).then(|| address.to_owned())
}

/// Outlook's autodiscover answer (the "outlook" response schema, 2006a) for `address`.
pub fn outlook_autodiscover(settings: &ZoneSettings, address: &str) -> String {
    let host = escape(&host(settings));
    let address = escape(address);
    let protocol = |kind: &str, port: u16| {
        format!(
            "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{host}</Server>\n        <Port>{port}</Port>\n        <LoginName>{address}</LoginName>\n        <SPA>off</SPA>\n        <SSL>on</SSL>\n        <AuthRequired>on</AuthRequired>\n      </Protocol>\n"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n{}{}{}    </Account>\n  </Response>\n</Autodiscover>\n",
        protocol("IMAP", settings.client_ports.imaps),
        protocol("POP3", settings.client_ports.pop3s),
        protocol("SMTP", settings.client_ports.submissions)
    )
}

/// An Apple configuration profile (`.mobileconfig`) with one IMAP account for `address`;
/// the password is asked on the device. `uuid_seed` makes the profile's identifiers stable
/// for one address, so installing it twice replaces rather than duplicates.
pub fn apple_mobileconfig(settings: &ZoneSettings, address: &str, display_name: &str) -> String {
    let host = escape(&host(settings));
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        address.to_ascii_lowercase().as_bytes(),
    );
    let bytes = digest.as_ref();
    let uuid = |offset: usize| {
        let hex: String = bytes[offset..offset + 16]
            .iter()
            .map(|octet| format!("{octet:02X}"))
            .collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    };
    let reverse_domain: String = address
        .rsplit_once('@')
        .map(|(_, domain)| domain.split('.').rev().collect::<Vec<_>>().join("."))
        .unwrap_or_default();
    let address = escape(address);
    let display_name = escape(display_name);
    let reverse_domain = escape(&reverse_domain);
    let (profile_uuid, account_uuid) = (uuid(0), uuid(16));
    let (imaps, submissions) = (
        settings.client_ports.imaps,
        settings.client_ports.submissions,
    );
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{display_name}</string>
      <key>EmailAccountType</key><string>EmailTypeIMAP</string>
      <key>EmailAddress</key><string>{address}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{host}</string>
      <key>IncomingMailServerPortNumber</key><integer>{imaps}</integer>
      <key>IncomingMailServerUseSSL</key><true/>
      <key>IncomingMailServerUsername</key><string>{address}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{host}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{submissions}</integer>
      <key>OutgoingMailServerUseSSL</key><true/>
      <key>OutgoingMailServerUsername</key><string>{address}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadDisplayName</key><string>{display_name}</string>
      <key>PayloadIdentifier</key><string>{reverse_domain}.mail.{account_uuid}</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{account_uuid}</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDisplayName</key><string>{display_name}</string>
  <key>PayloadIdentifier</key><string>{reverse_domain}.mail</string>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{profile_uuid}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn autodiscover_address_is_read_from_the_request() {
        let body = r#"<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>ann@example.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#;
        assert_eq!(
            autodiscover_request_address(body).as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(
            autodiscover_request_address("<EMailAddress></EMailAddress>"),
            None
        );
        assert_eq!(
            autodiscover_request_address("<EMailAddress>unterminated"),
            None
        );
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
