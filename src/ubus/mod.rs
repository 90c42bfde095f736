//! ubus over its unix socket: blob/blobmsg codec, client calls, object
//! registration (the `tmip` status object) and subscriptions.
