//! Deterministic, realistic-looking CRM data: people, companies, addresses, money, dates.
//!
//! Every function draws from a [`SeededRng`], so a record derived from
//! `derive_seed(seed, &[org, object])` and its index is the same on every run. The tables
//! are small on purpose: values look plausible, combinations give plenty of variety, and
//! generating one value costs a few nanoseconds.

use super::rng::SeededRng;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Common given names.
pub const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Sandra",
    "Mark",
    "Margaret",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Andrew",
    "Emily",
    "Paul",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Ronald",
    "Rebecca",
    "Jason",
    "Sharon",
    "Edward",
    "Laura",
    "Jeffrey",
    "Cynthia",
    "Ryan",
    "Dorothy",
    "Jacob",
    "Amy",
    "Nicholas",
    "Kathleen",
    "Gary",
    "Angela",
    "Eric",
    "Shirley",
    "Jonathan",
    "Emma",
    "Priya",
    "Wei",
    "Aisha",
    "Mateo",
    "Sofia",
    "Lukas",
    "Yuki",
    "Olga",
    "Siena",
    "Markus",
    "Bertha",
    "Phyllis",
    "Jeff",
];

/// Common family names.
pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Patel",
    "Kim",
    "Chen",
    "Müller",
    "Schmidt",
    "Kowalski",
    "Tanaka",
    "Dyer",
    "Blevins",
    "Haynes",
    "Sage",
    "Feinstein",
    "Nobel",
    "O'Brien",
];

const COMPANY_STEMS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Massive Dynamic",
    "Aperture",
    "Blue Sun",
    "Gringotts",
    "Oscorp",
    "Pied Piper",
    "Dunder Mifflin",
    "Nakatomi",
    "Vehement",
    "Sterling",
    "Bluth",
    "Prestige",
    "Monarch",
    "Zenith",
    "Pinnacle",
    "Summit",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Litware",
    "Adventure Works",
    "Proseware",
    "Lucerne",
    "Alpine",
    "Coho",
    "Wingtip",
    "Fourth Coffee",
    "Bellows",
    "Harbor",
    "Redwood",
    "Granite",
    "Silverline",
    "Brightpath",
];

const COMPANY_KINDS: &[&str] = &[
    "Systems",
    "Industries",
    "Labs",
    "Logistics",
    "Holdings",
    "Partners",
    "Solutions",
    "Manufacturing",
    "Foods",
    "Energy",
    "Health",
    "Analytics",
    "Robotics",
    "Consulting",
    "Financial",
    "Media",
    "Networks",
    "Biotech",
    "Retail",
    "Aerospace",
];

const COMPANY_SUFFIXES: &[&str] = &["Inc.", "LLC", "Corp.", "Ltd.", "GmbH", "Group", "Co.", ""];

/// A city with the pieces of a postal address that belong together.
#[derive(Debug, Clone, Copy)]
pub struct City {
    /// City name.
    pub city: &'static str,
    /// State or province code.
    pub state: &'static str,
    /// First digits of the postal code.
    pub postal_prefix: &'static str,
    /// Country name as Salesforce stores it by default.
    pub country: &'static str,
    /// Telephone area code (country-specific format handled by [`phone`]).
    pub area_code: &'static str,
}

/// Cities, mostly in the USA, as CRM data usually is.
pub const CITIES: &[City] = &[
    City {
        city: "San Francisco",
        state: "CA",
        postal_prefix: "941",
        country: "USA",
        area_code: "415",
    },
    City {
        city: "Los Angeles",
        state: "CA",
        postal_prefix: "900",
        country: "USA",
        area_code: "213",
    },
    City {
        city: "Seattle",
        state: "WA",
        postal_prefix: "981",
        country: "USA",
        area_code: "206",
    },
    City {
        city: "Austin",
        state: "TX",
        postal_prefix: "787",
        country: "USA",
        area_code: "512",
    },
    City {
        city: "Chicago",
        state: "IL",
        postal_prefix: "606",
        country: "USA",
        area_code: "312",
    },
    City {
        city: "New York",
        state: "NY",
        postal_prefix: "100",
        country: "USA",
        area_code: "212",
    },
    City {
        city: "Boston",
        state: "MA",
        postal_prefix: "021",
        country: "USA",
        area_code: "617",
    },
    City {
        city: "Atlanta",
        state: "GA",
        postal_prefix: "303",
        country: "USA",
        area_code: "404",
    },
    City {
        city: "Denver",
        state: "CO",
        postal_prefix: "802",
        country: "USA",
        area_code: "303",
    },
    City {
        city: "Tallahassee",
        state: "FL",
        postal_prefix: "323",
        country: "USA",
        area_code: "850",
    },
    City {
        city: "Raleigh",
        state: "NC",
        postal_prefix: "276",
        country: "USA",
        area_code: "919",
    },
    City {
        city: "Baltimore",
        state: "MD",
        postal_prefix: "212",
        country: "USA",
        area_code: "410",
    },
    City {
        city: "Hartford",
        state: "CT",
        postal_prefix: "061",
        country: "USA",
        area_code: "860",
    },
    City {
        city: "Richmond",
        state: "VA",
        postal_prefix: "232",
        country: "USA",
        area_code: "804",
    },
    City {
        city: "Toronto",
        state: "ON",
        postal_prefix: "M5V",
        country: "Canada",
        area_code: "416",
    },
    City {
        city: "London",
        state: "",
        postal_prefix: "EC1",
        country: "United Kingdom",
        area_code: "20",
    },
    City {
        city: "Berlin",
        state: "BE",
        postal_prefix: "101",
        country: "Germany",
        area_code: "30",
    },
    City {
        city: "Sydney",
        state: "NSW",
        postal_prefix: "200",
        country: "Australia",
        area_code: "2",
    },
];

const STREET_NAMES: &[&str] = &[
    "Main St",
    "Market St",
    "Oak Ave",
    "Pine St",
    "Maple Dr",
    "Cedar Ln",
    "Elm St",
    "Lake Rd",
    "Hill St",
    "Park Ave",
    "Mission St",
    "Broadway",
    "Washington Blvd",
    "Sunset Blvd",
    "Westcott Building",
    "Harbor Way",
    "River Rd",
    "Industrial Pkwy",
];

const TITLES: &[&str] = &[
    "CEO",
    "CFO",
    "CTO",
    "VP Sales",
    "VP Marketing",
    "Director of Operations",
    "Sales Manager",
    "Account Executive",
    "Procurement Manager",
    "IT Manager",
    "Software Engineer",
    "Office Manager",
    "Buyer",
    "Head of Finance",
    "Marketing Coordinator",
    "Product Manager",
];

const DEPARTMENTS: &[&str] = &[
    "Finance",
    "Procurement",
    "Internal Operations",
    "Facilities",
    "Production",
    "Technology",
    "Operations",
    "Warehouse Mgmt",
    "Administration",
    "Executive Team",
    "Sales",
    "Marketing",
];

const WORDS: &[&str] = &[
    "renewal",
    "expansion",
    "pilot",
    "rollout",
    "migration",
    "integration",
    "quarterly",
    "review",
    "contract",
    "pricing",
    "support",
    "onboarding",
    "training",
    "upgrade",
    "license",
    "priority",
    "follow-up",
    "proposal",
    "budget",
    "timeline",
    "stakeholder",
    "security",
    "compliance",
    "analytics",
    "platform",
    "warehouse",
    "shipment",
    "invoice",
    "discount",
    "customer",
    "partner",
    "regional",
    "enterprise",
    "strategic",
    "annual",
    "global",
];

/// A given name.
pub fn first_name(rng: &mut SeededRng) -> &'static str {
    rng.pick::<&str>(FIRST_NAMES)
}

/// A family name.
pub fn last_name(rng: &mut SeededRng) -> &'static str {
    rng.pick::<&str>(LAST_NAMES)
}

/// A company name like "Globex Logistics Inc.".
pub fn company(rng: &mut SeededRng) -> String {
    let stem = rng.pick(COMPANY_STEMS);
    let kind = rng.pick(COMPANY_KINDS);
    let suffix = rng.pick(COMPANY_SUFFIXES);
    if suffix.is_empty() {
        format!("{stem} {kind}")
    } else {
        format!("{stem} {kind} {suffix}")
    }
}

/// A domain derived from a company name: "Globex Logistics Inc." → "globexlogistics.com".
#[must_use]
pub fn domain_for(company: &str) -> String {
    let mut d: String = company
        .split_whitespace()
        .take(2)
        .flat_map(|w| w.chars())
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if d.is_empty() {
        d.push_str("example");
    }
    d.push_str(".com");
    d
}

/// An e-mail address `first.last@domain` (ASCII-folded, lowercase).
#[must_use]
pub fn email(first: &str, last: &str, domain: &str) -> String {
    let fold = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                'ü' => 'u',
                'ö' => 'o',
                'ä' => 'a',
                c => c,
            })
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    format!("{}.{}@{}", fold(first), fold(last), domain)
}

/// A city with its state, postal prefix and country.
pub fn city(rng: &mut SeededRng) -> City {
    *rng.pick(CITIES)
}

/// A street address like "1234 Market St".
pub fn street(rng: &mut SeededRng) -> String {
    format!("{} {}", rng.range_i64(1, 9999), rng.pick(STREET_NAMES))
}

/// A postal code in the city's format.
pub fn postal_code(rng: &mut SeededRng, city: &City) -> String {
    if city.country == "USA" {
        format!("{}{:02}", city.postal_prefix, rng.below(100))
    } else {
        format!("{} {}", city.postal_prefix, rng.range_i64(1, 9))
    }
}

/// A phone number in the city's style, e.g. "(415) 555-0142" for the USA.
pub fn phone(rng: &mut SeededRng, city: &City) -> String {
    if city.country == "USA" || city.country == "Canada" {
        format!("({}) 555-{:04}", city.area_code, rng.below(10_000))
    } else {
        format!(
            "+44 {} {:04} {:04}",
            city.area_code,
            rng.below(10_000),
            rng.below(10_000)
        )
    }
}

/// A job title.
pub fn title(rng: &mut SeededRng) -> &'static str {
    rng.pick::<&str>(TITLES)
}

/// A department name.
pub fn department(rng: &mut SeededRng) -> &'static str {
    rng.pick::<&str>(DEPARTMENTS)
}

/// A short phrase of `n` words, capitalised.
pub fn phrase(rng: &mut SeededRng, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        let w = rng.pick(WORDS);
        if i == 0 {
            let mut cs = w.chars();
            if let Some(c) = cs.next() {
                s.extend(c.to_uppercase());
                s.push_str(cs.as_str());
            }
        } else {
            s.push_str(w);
        }
    }
    s
}

/// A sentence of a few words ending with a period.
pub fn sentence(rng: &mut SeededRng) -> String {
    let n = 5 + rng.below(8) as usize;
    let mut s = phrase(rng, n);
    s.push('.');
    s
}

/// A money amount between `min` and `max`, rounded to whole hundreds like real pipelines.
pub fn amount(rng: &mut SeededRng, min: f64, max: f64) -> f64 {
    let v = min + rng.unit() * (max - min);
    (v / 100.0).round() * 100.0
}

/// A date in `[from, to]`.
pub fn date_between(rng: &mut SeededRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let days = (to - from).num_days().max(0);
    from + Duration::days(rng.range_i64(0, days))
}

/// An instant in `[from, to]`, truncated to whole seconds.
pub fn datetime_between(
    rng: &mut SeededRng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DateTime<Utc> {
    let secs = (to - from).num_seconds().max(0);
    from + Duration::seconds(rng.range_i64(0, secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_and_plausible() {
        let mut a = SeededRng::new(9);
        let mut b = SeededRng::new(9);
        let ca = company(&mut a);
        assert_eq!(ca, company(&mut b));
        let d = domain_for(&ca);
        assert!(d.ends_with(".com") && !d.contains(' '));
        let e = email("Anna", "Müller", "acme.com");
        assert_eq!(e, "anna.muller@acme.com");
        let c = city(&mut a);
        assert!(phone(&mut a, &c).len() >= 10);
        let amt = amount(&mut a, 1000.0, 50_000.0);
        assert!((1000.0..=50_000.0).contains(&amt));
    }
}
