//! Redis clients for the order cache and the live-update hub, opened one way.

use redis::IntoConnectionInfo;

/// A client for `url` whose connections send each command at once.
///
/// redis-rs leaves Nagle's algorithm on. One multiplexed connection carries
/// every page the API reads, so under load a command can wait for the ACK of
/// the one before it (the peer delays ACKs by up to 40 ms): tens of
/// milliseconds added to a read that Redis answers in microseconds.
pub(crate) fn open(url: &str) -> redis::RedisResult<redis::Client> {
    let info = url.into_connection_info()?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    redis::Client::open(info.set_tcp_settings(tcp))
}
