//! Which host serves a product in a region.

/// Regions served by the central `r-kvstore.aliyuncs.com` host; every other
/// region has its own `r-kvstore.<region>.aliyuncs.com` (from the official
/// SDKs' endpoint tables).
const KVSTORE_CENTRAL_REGIONS: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-hongkong",
    "ap-southeast-1",
    "us-east-1",
    "us-west-1",
    "cn-hangzhou-finance",
    "cn-shanghai-finance-1",
    "cn-shenzhen-finance-1",
    "cn-north-2-gov-1",
];

/// The central R-kvstore host, also where DescribeRegions is asked.
pub const KVSTORE_CENTRAL: &str = "https://r-kvstore.aliyuncs.com";

/// Whether `region` looks like an Alibaba region ID. It ends up in a host
/// name, so nothing but lower-case letters, digits and dashes.
pub fn is_valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

/// The host of the R-kvstore API for `region`, as DescribeRegions'
/// `RegionEndpoint` names it.
pub fn kvstore_host(region: &str) -> String {
    if KVSTORE_CENTRAL_REGIONS.contains(&region) {
        "r-kvstore.aliyuncs.com".to_string()
    } else {
        format!("r-kvstore.{region}.aliyuncs.com")
    }
}

/// The base URL of the R-kvstore API for `region`.
pub fn kvstore_endpoint(region: &str) -> String {
    format!("https://{}", kvstore_host(region))
}

/// The base URL of another product's API (`rds`, `dds`, `polardb`) for
/// `region`: the central `<prefix>.aliyuncs.com` (the reference sheet's
/// host) in the regions the central R-kvstore host serves, else
/// `<prefix>.<region>.aliyuncs.com`, the same regional rule as R-kvstore's
/// (the sheet does not list these products' regional hosts; an account's
/// `endpoint` overrides it).
pub fn product_endpoint(prefix: &str, region: &str) -> String {
    if KVSTORE_CENTRAL_REGIONS.contains(&region) {
        format!("https://{prefix}.aliyuncs.com")
    } else {
        format!("https://{prefix}.{region}.aliyuncs.com")
    }
}

/// `r-kvstore.aliyuncs.com`, `r-kvstore.eu-central-1.aliyuncs.com`: lower
/// case labels of letters, digits and dashes, under `aliyuncs.com`.
pub fn is_alibaba_host(host: &str) -> bool {
    host.len() <= 253
        && host.ends_with(".aliyuncs.com")
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_products_follow_the_same_regional_rule() {
        assert_eq!(
            product_endpoint("rds", "cn-hangzhou"),
            "https://rds.aliyuncs.com"
        );
        assert_eq!(
            product_endpoint("dds", "eu-central-1"),
            "https://dds.eu-central-1.aliyuncs.com"
        );
    }

    #[test]
    fn central_and_regional_hosts() {
        assert_eq!(
            kvstore_endpoint("cn-hangzhou"),
            "https://r-kvstore.aliyuncs.com"
        );
        assert_eq!(
            kvstore_endpoint("ap-southeast-1"),
            "https://r-kvstore.aliyuncs.com"
        );
        assert_eq!(
            kvstore_endpoint("cn-zhangjiakou"),
            "https://r-kvstore.cn-zhangjiakou.aliyuncs.com"
        );
        assert_eq!(
            kvstore_endpoint("eu-central-1"),
            "https://r-kvstore.eu-central-1.aliyuncs.com"
        );
        assert_eq!(kvstore_host("cn-shanghai"), "r-kvstore.aliyuncs.com");
        assert_eq!(
            kvstore_host("me-east-1"),
            "r-kvstore.me-east-1.aliyuncs.com"
        );
    }

    #[test]
    fn region_ids_are_checked() {
        assert!(is_valid_region("cn-hangzhou"));
        assert!(is_valid_region("ap-southeast-5"));
        assert!(!is_valid_region(""));
        assert!(!is_valid_region("evil.com/x"));
        assert!(!is_valid_region("CN-Hangzhou"));
        assert!(!is_valid_region("-cn"));
    }
}
