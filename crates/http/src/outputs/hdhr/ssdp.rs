//! SSDP (UPnP 1.0 discovery) search answers for the root tuner: an
//! `M-SEARCH` for `ssdp:all`, `upnp:rootdevice`, the MediaServer device
//! type or our own `uuid:` gets one answer per matching target, each with a
//! `LOCATION` of the tuner's `device.xml`. Pure text in, text out.

/// The device type `device.xml` declares.
pub(crate) const MEDIA_SERVER: &str = "urn:schemas-upnp-org:device:MediaServer:1";
const ROOT_DEVICE: &str = "upnp:rootdevice";

/// The UPnP unique device name of the device with this (hex) id.
pub(crate) fn udn(device_id: &str) -> String {
    format!("uuid:{device_id}-0000-0000-0000-000000000000")
}

/// The search target of an SSDP search request, or `None` when the
/// datagram is anything else (a NOTIFY, a reply, garbage).
pub(crate) fn search_target(datagram: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let request = lines.next()?.trim();
    if !request.eq_ignore_ascii_case("M-SEARCH * HTTP/1.1") {
        return None;
    }
    let (mut st, mut man) = (None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "st" => st = Some(value.to_owned()),
            "man" => man = Some(value.trim_matches('"').to_owned()),
            _ => {}
        }
    }
    if man.as_deref() != Some("ssdp:discover") {
        return None;
    }
    st.filter(|s| !s.is_empty() && s.len() <= 256)
}

/// The targets to answer `st` with: none when it is not ours.
pub(crate) fn targets(st: &str, udn: &str) -> Vec<String> {
    if st == "ssdp:all" {
        vec![ROOT_DEVICE.to_owned(), udn.to_owned(), MEDIA_SERVER.to_owned()]
    } else if st == ROOT_DEVICE || st == MEDIA_SERVER || st == udn {
        vec![st.to_owned()]
    } else {
        Vec::new()
    }
}

/// One search answer: `target` found at `location`.
pub(crate) fn answer(target: &str, udn: &str, location: &str) -> String {
    let usn = if target == udn { udn.to_owned() } else { format!("{udn}::{target}") };
    format!(
        "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: {location}\r\n\
         SERVER: Linux/1 UPnP/1.0 tunerpool/{}\r\nST: {target}\r\nUSN: {usn}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEARCH: &str = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\
                          MX: 2\r\nST: ssdp:all\r\n\r\n";

    #[test]
    fn a_search_gives_its_target_and_anything_else_nothing() {
        assert_eq!(search_target(SEARCH.as_bytes()).as_deref(), Some("ssdp:all"));
        let lower = SEARCH.replace("MAN", "man").replace("ST:", "st:").replace("ssdp:all", MEDIA_SERVER);
        assert_eq!(search_target(lower.as_bytes()).as_deref(), Some(MEDIA_SERVER));
        assert_eq!(search_target(SEARCH.replace("ssdp:discover", "other").as_bytes()), None);
        assert_eq!(search_target(SEARCH.replace("M-SEARCH", "NOTIFY").as_bytes()), None);
        assert_eq!(search_target(b"HTTP/1.1 200 OK\r\nST: ssdp:all\r\n\r\n"), None);
        assert_eq!(search_target(&[0xFF, 0xFE, 0x00]), None);
        assert_eq!(search_target(b""), None);
        for n in 0..SEARCH.len() {
            let _ = search_target(&SEARCH.as_bytes()[..n]);
        }
    }

    #[test]
    fn answers_name_the_target_and_the_description() {
        let udn = udn("1322F2F9");
        assert_eq!(targets("ssdp:all", &udn).len(), 3);
        assert_eq!(targets(ROOT_DEVICE, &udn), [ROOT_DEVICE]);
        assert_eq!(targets(&udn, &udn), std::slice::from_ref(&udn));
        assert!(targets("urn:schemas-upnp-org:device:Printer:1", &udn).is_empty());
        let a = answer(MEDIA_SERVER, &udn, "http://10.0.0.2:8080/device.xml");
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n") && a.ends_with("\r\n\r\n"), "{a}");
        assert!(a.contains("\r\nLOCATION: http://10.0.0.2:8080/device.xml\r\n"), "{a}");
        assert!(a.contains(&format!("\r\nUSN: {udn}::{MEDIA_SERVER}\r\n")), "{a}");
        assert!(answer(&udn, &udn, "x").contains(&format!("\r\nUSN: {udn}\r\n")));
    }
}
