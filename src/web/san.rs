//! The subject alternative names of a certificate, for
//! `client_allowed_sans`: DNS names, e-mail addresses, IP addresses and
//! URIs, as Go's `x509.Certificate` lists them.
//!
//! A small DER walker rather than `x509-parser`: only one extension is
//! read, the certificate has already been through rustls (and webpki when
//! it is verified), and x509-parser would bring nom, asn1-rs, der-parser,
//! oid-registry and `time` into the build for these few lines. It never
//! panics and never reads past its input: an unparsable certificate has no
//! SANs, so it matches no allow-list.

use std::net::{Ipv4Addr, Ipv6Addr};

/// `2.5.29.17`, subjectAltName.
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// One DER element: (tag, contents, what follows).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        // Multi-byte tags do not occur in the parts read here.
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed value's contents, in order.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, contents, rest) = element(input)?;
        input = rest;
        Some((tag, contents))
    })
}

/// Every DNS, e-mail, IP and URI SAN of the DER certificate `der`.
pub fn subject_alt_names(der: &[u8]) -> Vec<String> {
    sans(der).unwrap_or_default()
}

fn sans(der: &[u8]) -> Option<Vec<String>> {
    let (0x30, certificate, _) = element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = element(certificate)? else {
        return None;
    };
    // `[3] EXPLICIT Extensions`, the last field of TBSCertificate.
    let (_, explicit) = elements(tbs).find(|(tag, _)| *tag == 0xa3)?;
    let (0x30, extensions, _) = element(explicit)? else {
        return None;
    };
    let mut names = Vec::new();
    for (tag, extension) in elements(extensions) {
        if tag != 0x30 {
            continue;
        }
        let mut fields = elements(extension);
        let Some((0x06, oid)) = fields.next() else {
            continue;
        };
        if oid != SAN_OID {
            continue;
        }
        // `critical BOOLEAN DEFAULT FALSE`, then the OCTET STRING.
        let Some((0x04, value)) = fields.find(|(tag, _)| *tag == 0x04) else {
            continue;
        };
        let (0x30, general_names, _) = element(value)? else {
            continue;
        };
        for (tag, name) in elements(general_names) {
            match tag {
                // rfc822Name, dNSName, uniformResourceIdentifier: IA5String.
                0x81 | 0x82 | 0x86 => {
                    if let Ok(text) = std::str::from_utf8(name) {
                        names.push(text.to_string());
                    }
                }
                // iPAddress: as Go prints it (an IPv4-mapped address as IPv4).
                0x87 => match name.len() {
                    4 => {
                        let octets: [u8; 4] = name.try_into().ok()?;
                        names.push(Ipv4Addr::from(octets).to_string());
                    }
                    16 => {
                        let octets: [u8; 16] = name.try_into().ok()?;
                        let ip = Ipv6Addr::from(octets);
                        names.push(match ip.to_ipv4_mapped() {
                            Some(v4) => v4.to_string(),
                            None => ip.to_string(),
                        });
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_has_no_names() {
        assert!(subject_alt_names(b"").is_empty());
        assert!(subject_alt_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(subject_alt_names(&[0x30, 0x03, 0xa3, 0x01]).is_empty());
    }

    #[test]
    fn never_panics_on_any_prefix_or_mutation() {
        // A hand-built certificate skeleton with one SAN extension.
        fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
            [&[tag, contents.len() as u8][..], contents].concat()
        }
        let general_names = tlv(
            0x30,
            &[
                tlv(0x82, b"test3"),
                tlv(0x87, &[127, 0, 0, 1]),
                tlv(0x81, b"a@b"),
                tlv(0x87, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            ]
            .concat(),
        );
        let extension = tlv(
            0x30,
            &[
                tlv(0x06, SAN_OID),
                tlv(0x01, &[0]),
                tlv(0x04, &general_names),
            ]
            .concat(),
        );
        let extensions = tlv(0xa3, &tlv(0x30, &extension));
        let tbs = tlv(
            0x30,
            &[tlv(0x02, &[1]), tlv(0x30, &[]), extensions].concat(),
        );
        let der = tlv(0x30, &tbs);
        assert_eq!(
            subject_alt_names(&der),
            ["test3", "127.0.0.1", "a@b", "::1"]
        );
        for cut in 0..der.len() {
            let _ = subject_alt_names(&der[..cut]);
        }
        for i in 0..der.len() {
            for b in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                let mut mutated = der.clone();
                mutated[i] = b;
                let _ = subject_alt_names(&mutated);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(der in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = subject_alt_names(&der);
        }
    }
}
