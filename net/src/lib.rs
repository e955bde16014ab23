//! weir-net: framing, connections and data channels (arrives with the daemons issue).
