//! rtnetlink: links, addresses and routes, tagged with TMip's own routing
//! protocol number so a restarted daemon can find what it installed.
