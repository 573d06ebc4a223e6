//! A UDP relay in front of one server: it forwards every datagram between the server and
//! each client that sends to the relay, through an upstream socket of its own per client
//! address (so the server sees as many peers as there are clients), and, while faulty,
//! drops, delays, duplicates and so reorders datagrams with a seeded generator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What a faulty relay does to each datagram, in either direction.
pub const DROP: f64 = 0.05;
pub const DUPLICATE: f64 = 0.02;
/// Each datagram (and each duplicate) waits a uniform 0 to this many ms, so datagrams sent
/// close together arrive reordered.
pub const MAX_DELAY_MS: u64 = 50;

/// What a relay did, for the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub datagrams: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub clients: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.datagrams += other.datagrams;
        self.dropped += other.dropped;
        self.duplicated += other.duplicated;
        self.clients += other.clients;
    }
}

struct Shared {
    listen: Arc<UdpSocket>,
    target: SocketAddr,
    faulty: AtomicBool,
    rng: Mutex<StdRng>,
    datagrams: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    /// Client address -> the upstream socket that speaks for it to the server.
    uplinks: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A socket on 127.0.0.1 with buffers as large as the servers ask for theirs, so that a
/// reconnect storm overflows none and every loss is the relay's decision.
fn bind() -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    UdpSocket::from_std(socket.into())
}

/// A running relay; dropping it stops it.
pub struct Relay {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Relay {
    /// A relay on 127.0.0.1 (any port) to `target`, clean until [`Relay::set_faulty`].
    pub async fn start(target: SocketAddr, seed: u64) -> std::io::Result<Relay> {
        let listen = Arc::new(bind()?);
        let addr = listen.local_addr()?;
        let shared = Arc::new(Shared {
            listen,
            target,
            faulty: AtomicBool::new(false),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            datagrams: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            uplinks: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(from_clients(shared.clone()));
        shared.tasks.lock().unwrap().push(task);
        Ok(Relay { addr, shared })
    }

    pub fn set_faulty(&self, on: bool) {
        self.shared.faulty.store(on, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            datagrams: s.datagrams.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            duplicated: s.duplicated.load(Ordering::Relaxed),
            clients: s.uplinks.lock().unwrap().len() as u64,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in self.shared.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Datagrams from clients, each to the server through that client's upstream socket.
async fn from_clients(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, client) = match shared.listen.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(_) => {
                // An ICMP error reported on the socket; nothing to do but carry on.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let Ok(uplink) = uplink(&shared, client) else {
            continue;
        };
        forward(&shared, uplink, buf[..n].to_vec(), shared.target);
    }
}

/// The upstream socket of `client`, made (with its task forwarding the server's answers)
/// on its first datagram.
fn uplink(shared: &Arc<Shared>, client: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    if let Some(socket) = shared.uplinks.lock().unwrap().get(&client) {
        return Ok(socket.clone());
    }
    let socket = Arc::new(bind()?);
    shared
        .uplinks
        .lock()
        .unwrap()
        .insert(client, socket.clone());
    let task = tokio::spawn(from_server(shared.clone(), socket.clone(), client));
    shared.tasks.lock().unwrap().push(task);
    Ok(socket)
}

/// Datagrams from the server to one client's upstream socket, back to that client.
async fn from_server(shared: Arc<Shared>, socket: Arc<UdpSocket>, client: SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, _)) => forward(&shared, shared.listen.clone(), buf[..n].to_vec(), client),
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Sends `data` from `socket` to `to`, as the faults decide: not at all, once or twice,
/// each copy after its own delay.
fn forward(shared: &Shared, socket: Arc<UdpSocket>, data: Vec<u8>, to: SocketAddr) {
    shared.datagrams.fetch_add(1, Ordering::Relaxed);
    let delays: Vec<u64> = if shared.faulty.load(Ordering::Relaxed) {
        let mut rng = shared.rng.lock().unwrap();
        if rng.random_bool(DROP) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            Vec::new()
        } else if rng.random_bool(DUPLICATE) {
            shared.duplicated.fetch_add(1, Ordering::Relaxed);
            let a = rng.random_range(0..=MAX_DELAY_MS);
            vec![a, rng.random_range(0..=MAX_DELAY_MS)]
        } else {
            vec![rng.random_range(0..=MAX_DELAY_MS)]
        }
    } else {
        vec![0]
    };
    for delay in delays {
        if delay == 0 && socket.try_send_to(&data, to).is_ok() {
            continue;
        }
        let (socket, data) = (socket.clone(), data.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let _ = socket.send_to(&data, to).await;
        });
    }
}

#[tokio::test]
async fn a_faulty_relay_drops_duplicates_and_reorders_both_ways_and_a_clean_one_does_not() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay = Relay::start(server.local_addr().unwrap(), 7).await.unwrap();
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(&buf[..n], from).await.unwrap();
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Sends `n` numbered datagrams while it collects the echoes (so that no socket buffer
    // overflows), until none came for a moment.
    let exchange = |n: u32| {
        let (client, to) = (&client, relay.addr);
        async move {
            let send = async {
                for i in 0..n {
                    client.send_to(&i.to_be_bytes(), to).await.unwrap();
                    if i % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            };
            let receive = async {
                let mut got = Vec::new();
                let mut buf = [0u8; 64];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf)).await
                {
                    got.push(u32::from_be_bytes(buf[..n].try_into().unwrap()));
                }
                got
            };
            tokio::join!(send, receive).1
        }
    };
    let clean = exchange(500).await;
    assert_eq!(clean.len(), 500, "a clean relay forwards everything");
    relay.set_faulty(true);
    let faulty = exchange(2000).await;
    let distinct: std::collections::BTreeSet<u32> = faulty.iter().copied().collect();
    let lost = 2000 - distinct.len();
    // Each way drops 5 %: about 195 of 2000 lost on the round trip.
    assert!((100..300).contains(&lost), "{lost} lost");
    assert!(faulty.len() > distinct.len(), "some duplicated");
    assert!(faulty.windows(2).any(|w| w[1] < w[0]), "some reordered");
    assert_eq!(
        relay.counts().clients,
        1,
        "one upstream socket for the one client"
    );
    echo.abort();
}
