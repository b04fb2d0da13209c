//! A family of generated shops (`persona generate --types-by … --type-strength …`): the same six
//! hidden customer types, told apart by a different group of features in each member, so that
//! a segmentation default can be measured on data it was not tuned on.
//!
//! - `shop` (the default): the demo shop as it always was — the types differ in activity,
//!   purchasing, price level and channel, and big spenders and app regulars in age and income;
//! - `behaviour`: only activity, purchasing and price level differ;
//! - `channel`: only the app share, the phone platform and the time of day differ;
//! - `taste`: only the favourite categories differ (each type has two of its own);
//! - `demographics`: only the CRM attributes differ (age, income, loyalty tier, gender);
//! - `mixed`: every group differs, each at half the strength.
//!
//! In the groups that do not separate them, all types share one neutral profile, so they
//! overlap there. `--type-strength` (0 to 1) moves each type's parameters from that neutral
//! profile (0) to the type's own (1).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::world::{CATEGORIES, CustomerType};

/// Which group of features separates the hidden types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypesBy {
    /// The demo shop as it always was.
    #[default]
    Shop,
    /// Activity, purchasing and price level.
    Behaviour,
    /// App share, phone platform, time of day.
    Channel,
    /// Favourite categories.
    Taste,
    /// Age, income, loyalty tier, gender.
    Demographics,
    /// Every group, each at half the strength.
    Mixed,
}

/// A group of type parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Sessions per day, purchase rate, price level.
    Behaviour,
    /// App share, phone platform, peak hour.
    Channel,
    /// Favourite categories.
    Taste,
    /// CRM attributes.
    Demographics,
}

/// How the hidden types are told apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TypeMix {
    /// The separating group.
    pub by: TypesBy,
    /// From 0 (the types are alike) to 1 (each type's own parameters).
    pub strength: f64,
}

impl Default for TypeMix {
    fn default() -> Self {
        Self {
            by: TypesBy::Shop,
            strength: 1.0,
        }
    }
}

/// Neutral values, shared by every type in a group that does not separate them.
const NEUTRAL_SESSIONS: f64 = 0.3;
const NEUTRAL_PURCHASE_RATE: f64 = 0.35;
const NEUTRAL_PRICE_BIAS: f64 = 0.5;
const NEUTRAL_APP_SHARE: f64 = 0.5;

impl TypeMix {
    /// How far `group`'s parameters move towards each type's own (0: neutral, 1: the type's).
    pub fn weight(&self, group: Group) -> f64 {
        let on = match (self.by, group) {
            (TypesBy::Shop, Group::Taste) => 0.0,
            (TypesBy::Shop, _) | (TypesBy::Mixed, _) => 1.0,
            (TypesBy::Behaviour, Group::Behaviour)
            | (TypesBy::Channel, Group::Channel)
            | (TypesBy::Taste, Group::Taste)
            | (TypesBy::Demographics, Group::Demographics) => 1.0,
            _ => 0.0,
        };
        let half = if self.by == TypesBy::Mixed { 0.5 } else { 1.0 };
        on * half * self.strength
    }

    /// `neutral` moved by `weight` towards `own` (exactly `own` at weight 1).
    fn blend(own: f64, neutral: f64, weight: f64) -> f64 {
        if weight >= 1.0 {
            own
        } else {
            neutral + weight * (own - neutral)
        }
    }

    /// Expected sessions per day of a customer of `kind` on `day` of a window of `days`.
    pub fn sessions_per_day(&self, kind: CustomerType, day: u32, days: u32) -> f64 {
        Self::blend(
            kind.sessions_per_day(day, days),
            NEUTRAL_SESSIONS,
            self.weight(Group::Behaviour),
        )
    }

    /// The probability that a customer of `kind` buys what they put in the cart.
    pub fn purchase_rate(&self, kind: CustomerType) -> f64 {
        Self::blend(
            kind.purchase_rate(),
            NEUTRAL_PURCHASE_RATE,
            self.weight(Group::Behaviour),
        )
    }

    /// The price level a customer of `kind` prefers.
    pub fn price_bias(&self, kind: CustomerType) -> f64 {
        Self::blend(
            kind.price_bias(),
            NEUTRAL_PRICE_BIAS,
            self.weight(Group::Behaviour),
        )
    }

    /// The share of a customer's sessions in the app.
    pub fn app_share(&self, kind: CustomerType) -> f64 {
        let own = match self.by {
            TypesBy::Shop => kind.app_share(),
            _ => channel(kind).0,
        };
        Self::blend(own, NEUTRAL_APP_SHARE, self.weight(Group::Channel))
    }

    /// The phone platform of a customer of `kind` (outside `shop`: the type's lean, with the
    /// channel's weight; otherwise either).
    pub fn mobile(&self, rng: &mut ChaCha8Rng, kind: CustomerType) -> &'static str {
        let ios = Self::blend(channel(kind).1, 0.5, self.weight(Group::Channel));
        if rng.random::<f64>() < ios {
            "ios"
        } else {
            "android"
        }
    }

    /// The hour around which a customer of `kind` starts sessions.
    pub fn peak_hour(&self, rng: &mut ChaCha8Rng, kind: CustomerType) -> f64 {
        let spread = (rng.random_range(8.0..22.0f64) + rng.random_range(8.0..22.0f64)) / 2.0;
        let own = channel(kind).2 + 1.5 * super::world::normal(rng);
        Self::blend(own, spread, self.weight(Group::Channel)).clamp(0.0, 23.5)
    }

    /// A favourite category for a customer of `kind`: one of the type's own two with the taste
    /// weight's probability, any category otherwise.
    pub fn favourite(&self, rng: &mut ChaCha8Rng, kind: CustomerType) -> usize {
        if rng.random::<f64>() < self.weight(Group::Taste) {
            let own = 2 * type_index(kind) % CATEGORIES.len();
            own + rng.random_range(0..2)
        } else {
            rng.random_range(0..CATEGORIES.len())
        }
    }

    /// The CRM attributes of a customer of `kind`: (age in years, income base, the probability
    /// of a gold or platinum tier, the gender it leans to), moved from the neutral profile by
    /// the demographics weight.
    pub fn demographics(&self, kind: CustomerType) -> Demographics {
        let (age, income, premium, gender) = match kind {
            CustomerType::LoyalBigSpender => (58.0, 110_000.0, 0.85, "f"),
            CustomerType::BargainBrowser => (23.0, 26_000.0, 0.02, "m"),
            CustomerType::MobileRegular => (31.0, 52_000.0, 0.3, "d"),
            CustomerType::Occasional => (45.0, 64_000.0, 0.5, "m"),
            CustomerType::Lapsed => (68.0, 34_000.0, 0.05, "f"),
            CustomerType::Dormant => (38.0, 82_000.0, 0.15, "d"),
        };
        let w = self.weight(Group::Demographics);
        Demographics {
            age: Self::blend(age, 46.0, w),
            income: Self::blend(income, 48_000.0, w),
            premium: Self::blend(premium, 0.2, w),
            gender,
            gender_lean: w * 0.7,
        }
    }
}

/// A type's CRM attributes under a [`TypeMix`].
#[derive(Debug, Clone, Copy)]
pub struct Demographics {
    /// Mean age in years (customers spread ±8 years around it).
    pub age: f64,
    /// Income base (customers spread ±40% around it).
    pub income: f64,
    /// The probability of a gold or platinum tier.
    pub premium: f64,
    /// The gender the type leans to.
    pub gender: &'static str,
    /// The probability of that gender beyond an even draw.
    pub gender_lean: f64,
}

/// The type's channel habits when the channel separates the types: (app share, probability of
/// iOS, peak hour).
fn channel(kind: CustomerType) -> (f64, f64, f64) {
    match kind {
        CustomerType::LoyalBigSpender => (0.9, 0.9, 20.0),
        CustomerType::BargainBrowser => (0.1, 0.5, 9.0),
        CustomerType::MobileRegular => (0.9, 0.1, 8.0),
        CustomerType::Occasional => (0.5, 0.5, 14.0),
        CustomerType::Lapsed => (0.1, 0.5, 22.0),
        CustomerType::Dormant => (0.6, 0.9, 7.0),
    }
}

/// The type's place in the list of types (for its own categories).
fn type_index(kind: CustomerType) -> usize {
    match kind {
        CustomerType::LoyalBigSpender => 0,
        CustomerType::BargainBrowser => 1,
        CustomerType::MobileRegular => 2,
        CustomerType::Occasional => 3,
        CustomerType::Lapsed => 4,
        CustomerType::Dormant => 5,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::generate::world::World;

    /// Every member builds its world (a type's two own categories cannot fill three
    /// favourites), and under `taste` a type's first two favourites are its own.
    #[test]
    fn every_member_builds_a_world() {
        for by in [
            TypesBy::Shop,
            TypesBy::Behaviour,
            TypesBy::Channel,
            TypesBy::Taste,
            TypesBy::Demographics,
            TypesBy::Mixed,
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let world = World::new(&mut rng, 300, 60, 28, TypeMix { by, strength: 1.0 });
            assert_eq!(world.customers.len(), 300, "{by:?}");
            if by == TypesBy::Taste {
                for c in &world.customers {
                    let own = 2 * type_index(c.kind);
                    let mut first = c.favourites[..2].to_vec();
                    first.sort_unstable();
                    assert_eq!(first, [own, own + 1], "{:?}", c.kind);
                }
            }
        }
    }

    #[test]
    fn only_the_chosen_group_separates_and_strength_scales_it() {
        let taste = TypeMix {
            by: TypesBy::Taste,
            strength: 1.0,
        };
        assert_eq!(taste.weight(Group::Taste), 1.0);
        assert_eq!(taste.weight(Group::Behaviour), 0.0);
        assert_eq!(
            taste.purchase_rate(CustomerType::LoyalBigSpender),
            taste.purchase_rate(CustomerType::BargainBrowser)
        );
        let mixed = TypeMix {
            by: TypesBy::Mixed,
            strength: 0.8,
        };
        assert!((mixed.weight(Group::Channel) - 0.4).abs() < 1e-12);
        // The demo shop keeps its own parameters exactly.
        let shop = TypeMix::default();
        assert_eq!(
            shop.purchase_rate(CustomerType::BargainBrowser),
            CustomerType::BargainBrowser.purchase_rate()
        );
        assert_eq!(shop.weight(Group::Taste), 0.0);
    }
}
