//! `als_top_n(user_factors, excluded_items)`: a customer's best items under fitted item factors.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, Int32Array, ListArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Int32Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::ml::Factors;

/// The item factors and rules `als_top_n` scores against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TopNModel {
    /// Item factors, indexed by item integer id.
    pub items: Arc<Factors>,
    /// Items that may be recommended (in the catalog), indexed by item integer id.
    pub allowed: Arc<Vec<bool>>,
    /// How many items to return.
    pub n: usize,
}

/// Customers scored together: one block of the user × item score matrix is one matrix product.
const USER_BLOCK: usize = 128;
/// Items scored together (a block of scores stays in cache: 128 × 2048 floats = 1 MiB).
const ITEM_BLOCK: usize = 2048;

/// `als_top_n(user_factors list<float>, excluded list<int>) -> list<struct<rank int, item_idx int,
/// score float>>`: the `n` allowed items with the highest dot product with the user's factors, best
/// first (ties by lower item id), skipping the excluded item ids. Null or empty user factors give
/// an empty list.
///
/// Scoring is blocked: the users of a batch are taken [`USER_BLOCK`] at a time and scored against
/// [`ITEM_BLOCK`] items at a time with one matrix product (`matrixmultiply`), and each user keeps
/// a running top-N merged block by block; memory stays bounded whatever the catalog size.
///
/// `als_similar(item_factors, excluded)` is the same function over unit-length item factors
/// with the query normalised too: the items most similar to an item by cosine.
///
/// ```sql
/// SELECT customer_id, unnest(als_top_n(factors, purchased)) FROM user_factors;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AlsTopN {
    signature: Signature,
    model: Arc<TopNModel>,
    cosine: bool,
}

impl Default for AlsTopN {
    fn default() -> Self {
        Self::new(TopNModel::default())
    }
}

impl AlsTopN {
    /// Top-N by dot product against this model (`als_top_n`).
    pub fn new(model: TopNModel) -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            model: Arc::new(model),
            cosine: false,
        }
    }

    /// Top-N by cosine (`als_similar`): the model's item factors are normalised here.
    pub fn similar(model: TopNModel) -> Self {
        let items = Arc::new(model.items.normalized());
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            model: Arc::new(TopNModel { items, ..model }),
            cosine: true,
        }
    }

    /// [`Self::similar`] over item factors already scaled to unit length
    /// ([`Factors::normalized`]), for a caller that stores the normalised copy itself.
    pub fn similar_normalized(model: TopNModel) -> Self {
        Self::from_parts(model, true)
    }

    /// Rebuilds an instance from its model ([`Self::model`]) and whether it is `als_similar`
    /// (whose items are already normalised), as the codec decodes them.
    pub(crate) fn from_parts(model: TopNModel, cosine: bool) -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            model: Arc::new(model),
            cosine,
        }
    }

    /// The model this instance scores with.
    pub fn model(&self) -> &TopNModel {
        &self.model
    }

    fn item_fields() -> Fields {
        Fields::from(vec![
            Field::new("rank", DataType::Int32, false),
            Field::new("item_idx", DataType::Int32, false),
            Field::new("score", DataType::Float32, false),
        ])
    }

    /// The best `n` (item, score) pairs of each user, best first. `users` is row-major
    /// (`rank` wide); `excluded[u]` lists item ids user `u` must not get.
    fn top_n(&self, users: &[f32], excluded: &[&[i32]]) -> Vec<Vec<(i32, f32)>> {
        let items = &self.model.items;
        let (k, n) = (items.rank(), self.model.n);
        if k == 1 && users.iter().all(|&u| u > 0.0) {
            return self.top_n_one_ranking(users, excluded);
        }
        let m = users.len() / k.max(1);
        let mut best: Vec<Vec<(i32, f32)>> = vec![Vec::with_capacity(n + 1); m];
        let mut scores = vec![0.0f32; USER_BLOCK * ITEM_BLOCK];
        for u0 in (0..m).step_by(USER_BLOCK) {
            let ub = USER_BLOCK.min(m - u0);
            let Ok(u) = ArrayView2::from_shape((ub, k), &users[u0 * k..(u0 + ub) * k]) else {
                continue;
            };
            for i0 in (0..items.rows()).step_by(ITEM_BLOCK) {
                let ib = ITEM_BLOCK.min(items.rows() - i0);
                let block = &items.values()[i0 * k..(i0 + ib) * k];
                let (Ok(y), Ok(mut out)) = (
                    ArrayView2::from_shape((ib, k), block),
                    ArrayViewMut2::from_shape((ub, ib), &mut scores[..ub * ib]),
                ) else {
                    continue;
                };
                general_mat_mul(1.0, &u, &y.t(), 0.0, &mut out);
                for (row, top) in best[u0..u0 + ub].iter_mut().enumerate() {
                    let skip = excluded[u0 + row];
                    for (j, &s) in scores[row * ib..(row + 1) * ib].iter().enumerate() {
                        let item = i0 + j;
                        let full = top.len() == n;
                        if s.is_nan() || (full && s <= top[n - 1].1) {
                            continue;
                        }
                        if !self.model.allowed.get(item).copied().unwrap_or(false)
                            || skip.contains(&(item as i32))
                        {
                            continue;
                        }
                        // Items arrive in increasing id order, so an equal score stays behind.
                        let at = top.partition_point(|e| e.1 >= s);
                        top.insert(at, (item as i32, s));
                        top.truncate(n);
                    }
                }
            }
        }
        best
    }
}

impl AlsTopN {
    /// [`Self::top_n`] for rank-1 items and positive users (a popularity model): every user
    /// ranks the items in the same order, so the allowed items are sorted once and each user
    /// takes the first `n` that it does not exclude, instead of scoring every item again.
    fn top_n_one_ranking(&self, users: &[f32], excluded: &[&[i32]]) -> Vec<Vec<(i32, f32)>> {
        let items = &self.model.items;
        let mut order: Vec<(i32, f32)> = (0..items.rows())
            .filter(|&i| self.model.allowed.get(i).copied().unwrap_or(false))
            .map(|i| (i as i32, items.row(i)[0]))
            .filter(|e| !e.1.is_nan())
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        users
            .iter()
            .zip(excluded)
            .map(|(&u, skip)| {
                order
                    .iter()
                    .filter(|e| !skip.contains(&e.0))
                    .take(self.model.n)
                    .map(|&(i, score)| (i, u * score))
                    .collect()
            })
            .collect()
    }
}

impl ScalarUDFImpl for AlsTopN {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`als_top_n(user_factors list<float>, excluded list<int>) -> list<struct<rank int, item_idx int, score float>>`: the `n` allowed items with the highest dot product with the user's factors, best first (ties by lower item id), skipping the excluded item ids. Null or empty user factors give an empty list.  Scoring is blocked: the users of a batch are taken `USER_BLOCK` at a time and scored against `ITEM_BLOCK` items at a time with one matrix product (`matrixmultiply`), and each user keeps a running top-N merged block by block; memory stays bounded whatever the catalog size.  `als_similar(item_factors, excluded)` is the same function over unit-length item factors with the query normalised too: the items most similar to an item by cosine.",
                "als_top_n(user_factors list<float>, excluded list<int>)",
                "SELECT customer_id, unnest(als_top_n(factors, purchased)) FROM user_factors;",
            )
        });
        static SIMILAR: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`als_similar(item_factors list<float>, excluded list<int>) -> list<struct<rank int, item_idx int, score float>>`: the `n` allowed items most similar to an item by cosine of their factors, best first, skipping the excluded item ids (the item itself, in the similar_items stage).",
                "als_similar(item_factors list<float>, excluded list<int>)",
                "SELECT item_idx, unnest(als_similar(factors, make_array(item_idx))) FROM item_factor_rows;",
            )
        });
        Some(if self.cosine { &SIMILAR } else { &DOC })
    }

    fn name(&self) -> &str {
        if self.cosine {
            "als_similar"
        } else {
            "als_top_n"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(Self::item_fields()),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let k = self.model.items.rank();
        if k == 0 {
            return exec_err!(
                "{} has no item factors: it is built by the ALS fit, not called from SQL",
                self.name()
            );
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [users, excluded] = arrays.as_slice() else {
            return exec_err!(
                "{}: expected 2 arguments, got {}",
                self.name(),
                arrays.len()
            );
        };
        let users = crate::args::float32_list(self.name(), users)?;
        let excluded = crate::args::int32_list(self.name(), excluded)?;
        let excluded_values = excluded.values().as_primitive::<Int32Type>().values();
        // Rows with usable factors, gathered row-major; the others get an empty list.
        let (mut gathered, mut skip, mut present) = (Vec::new(), Vec::new(), Vec::new());
        for row in 0..users.len() {
            let mut user = crate::args::f32_row(&users, row);
            if user.len() != k {
                present.push(false);
                continue;
            }
            if self.cosine {
                let norm = crate::ml::dot(&user, &user).sqrt();
                if norm > 0.0 {
                    user.iter_mut().for_each(|v| *v /= norm);
                }
            }
            present.push(true);
            gathered.extend(user);
            skip.push(if excluded.is_null(row) {
                &[][..]
            } else {
                let o = excluded.value_offsets();
                &excluded_values[o[row] as usize..o[row + 1] as usize]
            });
        }
        let mut best = self.top_n(&gathered, &skip).into_iter();
        let (mut rank, mut idx, mut score) = (vec![], vec![], vec![]);
        let mut lengths = Vec::with_capacity(users.len());
        for has in present {
            let top = if has {
                best.next().unwrap_or_default()
            } else {
                vec![]
            };
            lengths.push(top.len());
            rank.extend(1..=top.len() as i32);
            idx.extend(top.iter().map(|s| s.0));
            score.extend(top.iter().map(|s| s.1));
        }
        let values: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(rank)),
            Arc::new(Int32Array::from(idx)),
            Arc::new(Float32Array::from(score)),
        ];
        let structs = StructArray::new(Self::item_fields(), values, None);
        let field = Arc::new(Field::new_list_field(
            DataType::Struct(Self::item_fields()),
            true,
        ));
        let list = ListArray::new(
            field,
            OffsetBuffer::from_lengths(lengths),
            Arc::new(structs),
            None,
        );
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn top_n_skips_excluded_and_disallowed_items_and_sorts() {
        let items = Factors::new(4, 1, vec![1.0, 4.0, 3.0, 2.0]).unwrap();
        let f = AlsTopN::new(TopNModel {
            items: Arc::new(items),
            allowed: Arc::new(vec![true, true, true, false]),
            n: 2,
        });
        let best = f.top_n(&[1.0, -1.0], &[&[1], &[]]);
        assert_eq!(best[0], vec![(2, 3.0), (0, 1.0)]);
        assert_eq!(best[1], vec![(0, -1.0), (2, -3.0)]);
    }

    #[test]
    fn a_popularity_model_ranks_like_scoring_every_item() {
        let pop: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32).collect();
        let model = TopNModel {
            items: Arc::new(Factors::new(300, 1, pop).unwrap()),
            allowed: Arc::new((0..300).map(|i| i % 7 != 0).collect()),
            n: 10,
        };
        let f = AlsTopN::new(model.clone());
        let excluded: Vec<Vec<i32>> = vec![vec![], vec![100, 33, 66], vec![0]];
        let skip: Vec<&[i32]> = excluded.iter().map(Vec::as_slice).collect();
        let fast = f.top_n(&[1.0, 2.0, 0.5], &skip);
        // Against scoring every allowed, not excluded item.
        for (user, u) in [1.0f32, 2.0, 0.5].iter().enumerate() {
            let mut all: Vec<(i32, f32)> = (0..300)
                .filter(|&i| model.allowed[i] && !excluded[user].contains(&(i as i32)))
                .map(|i| (i as i32, u * model.items.row(i)[0]))
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            assert_eq!(fast[user], all[..10].to_vec(), "user {user}");
        }
    }

    #[test]
    fn blocked_top_n_equals_scoring_every_pair() {
        let (users, items, k) = (300, 5000, 8);
        let value = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0) - 0.5;
        let y = Factors::new(items, k, (0..items * k).map(value).collect()).unwrap();
        let u: Vec<f32> = (0..users * k).map(|i| value(i + 17)).collect();
        let allowed: Vec<bool> = (0..items).map(|i| i % 5 != 0).collect();
        let f = AlsTopN::new(TopNModel {
            items: Arc::new(y.clone()),
            allowed: Arc::new(allowed.clone()),
            n: 10,
        });
        let excluded: Vec<Vec<i32>> = (0..users).map(|i| vec![i as i32 * 3, 7]).collect();
        let skip: Vec<&[i32]> = excluded.iter().map(Vec::as_slice).collect();
        let best = f.top_n(&u, &skip);
        for (user, top) in best.iter().enumerate() {
            let mut all: Vec<(i32, f32)> = (0..items)
                .filter(|&i| allowed[i] && !excluded[user].contains(&(i as i32)))
                .map(|i| {
                    (
                        i as i32,
                        crate::ml::dot(&u[user * k..(user + 1) * k], y.row(i)),
                    )
                })
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let expected: Vec<i32> = all[..10].iter().map(|e| e.0).collect();
            let got: Vec<i32> = top.iter().map(|e| e.0).collect();
            assert_eq!(got, expected, "user {user}");
        }
    }
}
