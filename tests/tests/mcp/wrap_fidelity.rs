//! `bulkhead mcp wrap` is transparent: the official inspector gets the same
//! answers from the reference server `server-everything` through bulkhead
//! (sandboxed under `untrusted`) as from the bare server.
//!
//! The peers come from the npm registry (`scripts/test` installs them with
//! `../shared/peers/install-mcp-peers.sh` and exports `MCP_*`).

use bulkhead_tests::{assert_same_answers, bin, peer, wrap_command};

#[test]
fn wrapped_server_everything_answers_like_the_bare_one() {
    let bare = vec![peer("MCP_NODE"), peer("MCP_EVERYTHING"), "stdio".to_owned()];
    let wrapped = wrap_command(&bin("bulkhead"), &bare);
    assert_same_answers(&bare, &wrapped);
}
