//! A small stub resolver for `tme domain check`: one question with RD set to the
//! `[resolver]` servers (or the first `nameserver` of `/etc/resolv.conf`), over UDP, again
//! over TCP when the answer is truncated. No cache, no DNSSEC validation: it reports what
//! the public path answers, which is all the check needs.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The servers to ask: the configured ones, else the system's.
pub fn servers(configured: &[SocketAddr]) -> Vec<SocketAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|address| address.trim().parse::<std::net::IpAddr>().ok())
        .map(|address| SocketAddr::new(address, 53))
        .collect()
}

/// The answer section for `name`/`record_type` from the first server that answers;
/// NXDOMAIN is an empty answer, a failure an error.
pub async fn lookup(
    servers: &[SocketAddr],
    name: &Name,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Vec<Record>, String> {
    let mut last_error = "no resolver configured".to_owned();
    for server in servers {
        match ask(*server, name, record_type, timeout).await {
            Ok(records) => return Ok(records),
            Err(error) => last_error = format!("{server}: {error}"),
        }
    }
    Err(last_error)
}

async fn ask(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Vec<Record>, String> {
    let id: u16 = rand::random();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), record_type));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let bytes = query.to_vec().map_err(|error| error.to_string())?;
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|_| "address")?
    } else {
        "[::]:0".parse().map_err(|_| "address")?
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|error| error.to_string())?;
    socket
        .send_to(&bytes, server)
        .await
        .map_err(|error| error.to_string())?;
    let mut buffer = vec![0u8; 65_535];
    let response = loop {
        let (length, from) = tokio::time::timeout(timeout, socket.recv_from(&mut buffer))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        if from != server {
            continue;
        }
        let Ok(response) = Message::from_vec(&buffer[..length]) else {
            continue;
        };
        if response.id == id {
            break response;
        }
    };
    let response = if response.truncation {
        let mut stream = tokio::time::timeout(timeout, TcpStream::connect(server))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream
            .write_all(&framed)
            .await
            .map_err(|error| error.to_string())?;
        let mut length = [0u8; 2];
        tokio::time::timeout(timeout, stream.read_exact(&mut length))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(length))];
        tokio::time::timeout(timeout, stream.read_exact(&mut body))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        Message::from_vec(&body).map_err(|error| error.to_string())?
    } else {
        response
    };
    match response.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(response.answers),
        other => Err(format!("answered {other}")),
    }
}
