//! The zone of one hosted domain, made from the directory and the `[dns]` config.
//!
//! This module owns which records every domain gets (SOA, NS, MX, SPF, DKIM, DMARC, MTA-STS,
//! TLS-RPT, client set-up SRV and names) and the in-memory form that `answer` reads. It does
//! no I/O: the server hands it what it read from the directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use tme_core::config::{ClientPorts, Config, MtaStsMode};
use tme_store::{DkimKey, DnsRecord};

use crate::DnsError;
use crate::prepared::{PreparedCell, PreparedZone, wire_key};

/// SOA timers (RFC 1912 §2.2 ranges): how often secondaries check, retry, and give up.
const SOA_REFRESH_SECONDS: i32 = 14_400;
const SOA_RETRY_SECONDS: i32 = 3_600;
const SOA_EXPIRE_SECONDS: i32 = 1_209_600;
/// One character-string of a TXT record holds at most 255 octets (RFC 1035 §3.3).
const TXT_STRING_OCTETS_MAX: usize = 255;

/// The client set-up services published as SRV records (RFC 6186 §3, RFC 8314 §5.1, RFC 8620
/// §2.2), with their ports from `dns.client_ports`; `_autodiscover._tcp` is Microsoft's
/// (MS-OXDSCLI §3.1.5).
pub fn client_services(ports: &ClientPorts) -> [(&'static str, u16); 5] {
    [
        ("_imaps._tcp", ports.imaps),
        ("_submissions._tcp", ports.submissions),
        ("_pop3s._tcp", ports.pop3s),
        ("_jmap._tcp", ports.https),
        ("_autodiscover._tcp", ports.https),
    ]
}

/// The host names under each domain that point at the client host (CNAME): autoconfig for
/// Thunderbird, autodiscover for Outlook, mta-sts for the MTA-STS policy (RFC 8461 §3.3).
pub const CLIENT_NAMES: &[&str] = &["autoconfig", "autodiscover", "mta-sts"];

/// One MX target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailHost {
    pub host: Name,
    pub priority: u16,
    pub addresses: Vec<IpAddr>,
}

/// What every zone is made with: the `[dns]` config with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSettings {
    pub name_servers: Vec<Name>,
    /// The SOA's RNAME (`hostmaster.example.net.`).
    pub hostmaster: Name,
    pub mail_hosts: Vec<MailHost>,
    pub client_host: Name,
    /// The public ports of the client services (SRV records, set-up documents).
    pub client_ports: ClientPorts,
    pub ttl_seconds: u32,
    pub negative_ttl_seconds: u32,
    pub spf: String,
    pub dmarc: String,
    pub tls_rpt: String,
    pub mta_sts_mode: MtaStsMode,
    pub mta_sts_max_age_seconds: u32,
}

fn host_name(text: &str, key: &str) -> Result<Name, DnsError> {
    let mut name = Name::from_ascii(text)
        .map_err(|error| DnsError::Config(format!("{key}: `{text}`: {error}")))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

impl ZoneSettings {
    /// The settings `config` gives, `node.hostname` where a name is left empty.
    pub fn from_config(config: &Config) -> Result<ZoneSettings, DnsError> {
        let dns = &config.dns;
        let hostname = &config.node.hostname;
        let name_servers = if dns.name_servers.is_empty() {
            vec![host_name(hostname, "node.hostname")?]
        } else {
            dns.name_servers
                .iter()
                .map(|name| host_name(name, "dns.name_servers"))
                .collect::<Result<_, _>>()?
        };
        let hostmaster_address = if dns.hostmaster.is_empty() {
            format!("hostmaster@{hostname}")
        } else {
            dns.hostmaster.clone()
        };
        // RFC 1035 §8: the mailbox's local part becomes the first label.
        let (local, domain) = hostmaster_address
            .split_once('@')
            .ok_or_else(|| DnsError::Config(format!("dns.hostmaster: `{hostmaster_address}`")))?;
        let hostmaster = host_name(domain, "dns.hostmaster")?
            .prepend_label(local)
            .map_err(|error| DnsError::Config(format!("dns.hostmaster: {error}")))?;
        let mail_hosts = if dns.mail_hosts.is_empty() {
            vec![MailHost {
                host: host_name(hostname, "node.hostname")?,
                priority: 10,
                addresses: Vec::new(),
            }]
        } else {
            dns.mail_hosts
                .iter()
                .map(|host| {
                    Ok(MailHost {
                        host: host_name(&host.host, "dns.mail_hosts")?,
                        priority: host.priority,
                        addresses: host.addresses.clone(),
                    })
                })
                .collect::<Result<_, DnsError>>()?
        };
        let client_host = if dns.client_host.is_empty() {
            host_name(hostname, "node.hostname")?
        } else {
            host_name(&dns.client_host, "dns.client_host")?
        };
        Ok(ZoneSettings {
            name_servers,
            hostmaster,
            mail_hosts,
            client_host,
            client_ports: dns.client_ports,
            ttl_seconds: dns.ttl_seconds,
            negative_ttl_seconds: dns.negative_ttl_seconds,
            spf: dns.spf.clone(),
            dmarc: dns.dmarc.clone(),
            tls_rpt: dns.tls_rpt.clone(),
            mta_sts_mode: dns.mta_sts_mode,
            mta_sts_max_age_seconds: dns.mta_sts_max_age_seconds,
        })
    }

    /// The MTA-STS policy file (RFC 8461 §3.2), served at
    /// `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`: the same for every domain, since every
    /// domain's mail goes to the same hosts.
    pub fn mta_sts_policy(&self) -> String {
        let mut policy = format!("version: STSv1\r\nmode: {}\r\n", self.mta_sts_mode.as_str());
        for host in &self.mail_hosts {
            policy.push_str(&format!(
                "mx: {}\r\n",
                host.host.to_ascii().trim_end_matches('.')
            ));
        }
        policy.push_str(&format!("max_age: {}\r\n", self.mta_sts_max_age_seconds));
        policy
    }

    /// The policy's id (RFC 8461 §3.1: up to 32 alphanumerics), changing when the policy
    /// does, so senders fetch it again.
    pub fn mta_sts_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.mta_sts_policy().as_bytes());
        digest.as_ref()[..10]
            .iter()
            .map(|octet| format!("{octet:02x}"))
            .collect()
    }
}

/// The DKIM key record's text (RFC 6376 §3.6.1, RFC 8463 §4.2).
pub fn dkim_record_text(key: &DkimKey) -> String {
    format!(
        "v=DKIM1; k={}; p={}",
        key.algorithm.key_type(),
        base64::engine::general_purpose::STANDARD.encode(&key.public_key)
    )
}

/// A TXT record's data from one text, cut into character-strings of at most 255 octets.
pub fn txt(text: &str) -> RData {
    let strings = text
        .as_bytes()
        .chunks(TXT_STRING_OCTETS_MAX)
        .collect::<Vec<_>>();
    RData::TXT(TXT::from_bytes(strings))
}

/// A record's data in zone-file presentation format. hickory-proto writes TXT strings bare,
/// which would not read back as the same strings; here each is quoted, with `"` and `\\`
/// escaped and octets outside printable ASCII as `\\DDD` (RFC 1035 §5.1).
pub fn presentation(data: &RData) -> String {
    let RData::TXT(txt) = data else {
        return data.to_string();
    };
    let mut text = String::new();
    for (index, string) in txt.txt_data.iter().enumerate() {
        if index > 0 {
            text.push(' ');
        }
        text.push('"');
        for &octet in string.iter() {
            match octet {
                b'"' | b'\\' => {
                    text.push('\\');
                    text.push(char::from(octet));
                }
                0x20..=0x7e => text.push(char::from(octet)),
                _ => text.push_str(&format!("\\{octet:03}")),
            }
        }
        text.push('"');
    }
    text
}

/// A whole record in presentation format (owner, TTL, class, type, data).
pub fn record_text(record: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        record.name,
        record.ttl,
        record.dns_class,
        record.record_type(),
        presentation(&record.data)
    )
}

/// The zone of one domain, ready to answer from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    origin: Name,
    serial: u32,
    soa: Record,
    /// Every record but the SOA, sorted by owner, type and data: the zone's content, compared
    /// to notice a change.
    records: Vec<Record>,
    /// Each owner's records (the SOA among the apex's).
    by_owner: HashMap<LowerName, Vec<Record>>,
    /// Names that own nothing but have descendants that do (RFC 8020: they exist).
    empty_non_terminals: HashSet<LowerName>,
    /// The answers in wire form, made when the zone is first asked (`prepared`).
    prepared: PreparedCell,
}

impl Zone {
    /// Builds a zone from its records (without SOA) and its SOA fields.
    fn new(origin: Name, serial: u32, settings: &ZoneSettings, mut records: Vec<Record>) -> Zone {
        sort_records(&mut records);
        records.dedup();
        let soa = Record::from_rdata(
            origin.clone(),
            settings.ttl_seconds,
            RData::SOA(SOA::new(
                settings.name_servers[0].clone(),
                settings.hostmaster.clone(),
                serial,
                SOA_REFRESH_SECONDS,
                SOA_RETRY_SECONDS,
                SOA_EXPIRE_SECONDS,
                settings.negative_ttl_seconds,
            )),
        );
        let mut by_owner: HashMap<LowerName, Vec<Record>> = HashMap::new();
        by_owner
            .entry(LowerName::new(&origin))
            .or_default()
            .push(soa.clone());
        let mut empty_non_terminals = HashSet::new();
        for record in &records {
            by_owner
                .entry(LowerName::new(&record.name))
                .or_default()
                .push(record.clone());
            let mut ancestor = record.name.base_name();
            while ancestor.num_labels() > origin.num_labels() {
                empty_non_terminals.insert(LowerName::new(&ancestor));
                ancestor = ancestor.base_name();
            }
        }
        empty_non_terminals.retain(|name| !by_owner.contains_key(name));
        Zone {
            origin,
            serial,
            soa,
            records,
            by_owner,
            empty_non_terminals,
            prepared: PreparedCell::default(),
        }
    }

    /// Every name that exists, with what it owns (nothing, for an empty non-terminal).
    pub fn owners(&self) -> impl Iterator<Item = (&LowerName, &[Record])> {
        self.by_owner
            .iter()
            .map(|(name, records)| (name, records.as_slice()))
            .chain(
                self.empty_non_terminals
                    .iter()
                    .map(|name| (name, &[] as &[Record])),
            )
    }

    /// The answers in wire form, made on first use (a zone never asked costs nothing).
    pub(crate) fn prepared(&self) -> &PreparedZone {
        self.prepared
            .0
            .get_or_init(|| Arc::new(PreparedZone::new(self)))
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// Every record but the SOA, in a stable order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The same zone with another serial.
    pub fn with_serial(&self, serial: u32, settings: &ZoneSettings) -> Zone {
        Zone::new(self.origin.clone(), serial, settings, self.records.clone())
    }

    /// What `name` owns; None when the name does not exist (an empty non-terminal exists but
    /// owns nothing).
    pub fn lookup(&self, name: &LowerName) -> Option<&[Record]> {
        match self.by_owner.get(name) {
            Some(records) => Some(records),
            None if self.empty_non_terminals.contains(name) => Some(&[]),
            None => None,
        }
    }

    /// The SOA for the authority section of a negative answer: its TTL is the lesser of its
    /// own and its MINIMUM (RFC 2308 §3).
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &soa.data {
            soa.ttl = soa.ttl.min(data.minimum);
        }
        soa
    }

    /// The whole zone as presentation-format lines, SOA first.
    pub fn to_text(&self) -> String {
        std::iter::once(&self.soa)
            .chain(&self.records)
            .map(|record| format!("{}\n", record_text(record)))
            .collect()
    }
}

fn sort_records(records: &mut [Record]) {
    records.sort_by_cached_key(|record| {
        (
            LowerName::new(&record.name),
            u16::from(record.record_type()),
            presentation(&record.data),
        )
    });
}

/// What the directory holds for one domain.
#[derive(Debug, Clone, Copy)]
pub struct DomainInput<'a> {
    pub domain: &'a tme_core::Domain,
    pub dkim_keys: &'a [DkimKey],
    pub custom_records: &'a [DnsRecord],
}

/// The records generated for `origin` (no SOA), before custom records.
pub fn generated_records(
    settings: &ZoneSettings,
    origin: &Name,
    dkim_keys: &[DkimKey],
) -> Vec<Record> {
    let ttl = settings.ttl_seconds;
    let domain_text = origin.to_ascii();
    let domain_text = domain_text.trim_end_matches('.');
    let at =
        |label: &str| -> Option<Name> { Name::from_ascii(label).ok()?.append_domain(origin).ok() };
    let mut records = Vec::new();
    let mut add = |name: Option<Name>, data: RData| {
        if let Some(name) = name {
            records.push(Record::from_rdata(name, ttl, data));
        }
    };
    for name_server in &settings.name_servers {
        add(Some(origin.clone()), RData::NS(NS(name_server.clone())));
    }
    for host in &settings.mail_hosts {
        add(
            Some(origin.clone()),
            RData::MX(MX::new(host.priority, host.host.clone())),
        );
        // A mail host inside this zone gets its addresses here.
        if origin.zone_of(&host.host) {
            for address in &host.addresses {
                let data = match address {
                    IpAddr::V4(address) => RData::A(A(*address)),
                    IpAddr::V6(address) => RData::AAAA(AAAA(*address)),
                };
                add(Some(host.host.clone()), data);
            }
        }
    }
    add(Some(origin.clone()), txt(&settings.spf));
    for key in dkim_keys {
        add(
            at(&format!("{}._domainkey", key.selector)),
            txt(&dkim_record_text(key)),
        );
    }
    add(
        at("_dmarc"),
        txt(&settings.dmarc.replace("{domain}", domain_text)),
    );
    add(
        at("_mta-sts"),
        txt(&format!("v=STSv1; id={}", settings.mta_sts_id())),
    );
    add(
        at("_smtp._tls"),
        txt(&settings.tls_rpt.replace("{domain}", domain_text)),
    );
    for (service, port) in client_services(&settings.client_ports) {
        add(
            at(service),
            RData::SRV(SRV::new(0, 1, port, settings.client_host.clone())),
        );
    }
    for label in CLIENT_NAMES {
        let name = at(label);
        // A client host that is this very name would make a CNAME loop.
        if name.as_ref() != Some(&settings.client_host) {
            add(name, RData::CNAME(CNAME(settings.client_host.clone())));
        }
    }
    records
}

/// Builds the zone of one domain: the generated records, then its custom ones. A custom
/// record that no longer parses (it did when added) is left out and reported.
pub fn build_zone(
    settings: &ZoneSettings,
    input: DomainInput<'_>,
    serial: u32,
) -> Result<(Zone, Vec<String>), DnsError> {
    let origin = host_name(input.domain.as_str(), "domain")?;
    let mut records = generated_records(settings, &origin, input.dkim_keys);
    let mut problems = Vec::new();
    for custom in input.custom_records {
        match crate::custom::to_record(&origin, custom) {
            Ok(record) => records.push(record),
            Err(error) => {
                problems.push(format!("record {} of {}: {error}", custom.id, input.domain))
            }
        }
    }
    Ok((Zone::new(origin, serial, settings, records), problems))
}

/// Every hosted zone, by origin.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    zones: HashMap<LowerName, Arc<Zone>>,
    /// The same zones by origin in lower-case wire form, for `prepared`'s lookups.
    by_wire: HashMap<Box<[u8]>, Arc<Zone>>,
}

impl Catalog {
    pub fn new(zones: impl IntoIterator<Item = Arc<Zone>>) -> Catalog {
        let zones: HashMap<LowerName, Arc<Zone>> = zones
            .into_iter()
            .map(|zone| (LowerName::new(zone.origin()), zone))
            .collect();
        let by_wire = zones
            .values()
            .filter_map(|zone| Some((wire_key(zone.origin())?, zone.clone())))
            .collect();
        Catalog { zones, by_wire }
    }

    /// The zone whose origin is `origin`, in lower-case wire form.
    pub(crate) fn find_wire(&self, origin: &[u8]) -> Option<&Arc<Zone>> {
        self.by_wire.get(origin)
    }

    /// The zone `name` lies in (the closest enclosing one), if we host it.
    pub fn find(&self, name: &LowerName) -> Option<&Arc<Zone>> {
        let mut candidate = name.clone();
        loop {
            if let Some(zone) = self.zones.get(&candidate) {
                return Some(zone);
            }
            if candidate.is_root() {
                return None;
            }
            candidate = candidate.base_name();
        }
    }

    pub fn get(&self, origin: &LowerName) -> Option<&Arc<Zone>> {
        self.zones.get(origin)
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }
}

/// Gives each zone of a new build its serial: the old serial when its content is unchanged,
/// else one above both the old serial and `now_unix` (a "time" serial: it grows across
/// restarts too, RFC 1982 arithmetic aside). Returns the new catalog and the origins that
/// changed (to NOTIFY).
pub fn assign_serials(
    previous: &Catalog,
    built: Vec<Zone>,
    settings: &ZoneSettings,
    now_unix: u32,
) -> (Catalog, Vec<Name>) {
    let mut changed = Vec::new();
    let mut zones = Vec::with_capacity(built.len());
    for zone in built {
        let old = previous.get(&LowerName::new(zone.origin()));
        let zone = match old {
            Some(old) if old.records == zone.records && old.soa_fields_equal(&zone) => old.clone(),
            Some(old) => {
                changed.push(zone.origin.clone());
                Arc::new(zone.with_serial(now_unix.max(old.serial.wrapping_add(1)), settings))
            }
            None => {
                changed.push(zone.origin.clone());
                Arc::new(zone.with_serial(now_unix, settings))
            }
        };
        zones.push(zone);
    }
    (Catalog::new(zones), changed)
}

impl Zone {
    /// Whether the SOA says the same but for the serial.
    fn soa_fields_equal(&self, other: &Zone) -> bool {
        match (&self.soa.data, &other.soa.data) {
            (RData::SOA(mine), RData::SOA(theirs)) => {
                self.soa.ttl == other.soa.ttl
                    && mine.mname == theirs.mname
                    && mine.rname == theirs.rname
                    && mine.minimum == theirs.minimum
            }
            _ => false,
        }
    }
}

/// The records of a zone grouped into RRsets by owner and type, in zone order.
pub fn rrsets(records: &[Record]) -> BTreeMap<(LowerName, u16), Vec<&Record>> {
    let mut sets: BTreeMap<(LowerName, u16), Vec<&Record>> = BTreeMap::new();
    for record in records {
        sets.entry((
            LowerName::new(&record.name),
            u16::from(record.record_type()),
        ))
        .or_default()
        .push(record);
    }
    sets
}

/// The record types a custom record may have.
pub const CUSTOM_RECORD_TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::MX,
    RecordType::SRV,
    RecordType::CAA,
];
