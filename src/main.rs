fn main() {
    let _ = pingora::server::Server::new(None);
}
