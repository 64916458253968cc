//! The geometry of an annotation (API.md "Annotations: regions on images"): one region in the
//! pixel coordinates of the stored image (origin top-left, x to the right, y down, units
//! pixels, fractional values allowed). Area and the degenerate-polygon test use `geo`'s robust
//! predicates rather than hand-written geometry.
//!
//! | shape | `geometry` | rules |
//! |---|---|---|
//! | `box` | `{"x", "y", "width", "height"}` | width, height > 0; wholly inside the image |
//! | `polygon` | `{"points": [[x, y], ...]}` | 3 to 10,000 points, not all on one line, each inside |
//! | `point` | `{"x", "y"}` | inside |
//!
//! "Inside" is 0 <= x <= width and 0 <= y <= height: a region may touch the border.

use geo::kernels::{Kernel, Orientation, RobustKernel};
use geo::{Area, Coord, LineString, Polygon};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most points a polygon may have.
pub const MAX_POLYGON_POINTS: usize = 10_000;

/// What kind of region an annotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Box,
    Polygon,
    Point,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Box => "box",
            Shape::Polygon => "polygon",
            Shape::Point => "point",
        }
    }

    pub fn from_name(name: &str) -> Option<Shape> {
        [Shape::Box, Shape::Polygon, Shape::Point]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// Writes a coordinate as JSON: a whole number as an integer (`40`, not `40.0`), so a
/// geometry reads back as it was sent; others as the shortest decimal that round-trips.
fn coordinate<S: serde::Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact
    if value.fract() == 0.0 && value.abs() < EXACT {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

fn points<S: serde::Serializer>(points: &[[f64; 2]], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    struct Pair<'a>(&'a [f64; 2]);
    impl Serialize for Pair<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeTuple;
            let mut pair = s.serialize_tuple(2)?;
            for v in self.0 {
                pair.serialize_element(&Coordinate(*v))?;
            }
            pair.end()
        }
    }
    struct Coordinate(f64);
    impl Serialize for Coordinate {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            coordinate(&self.0, s)
        }
    }
    let mut seq = s.serialize_seq(Some(points.len()))?;
    for p in points {
        seq.serialize_element(&Pair(p))?;
    }
    seq.end()
}

/// A box: top-left corner and size, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BoxGeometry {
    #[serde(serialize_with = "coordinate")]
    pub x: f64,
    #[serde(serialize_with = "coordinate")]
    pub y: f64,
    /// > 0.
    #[serde(serialize_with = "coordinate")]
    pub width: f64,
    /// > 0.
    #[serde(serialize_with = "coordinate")]
    pub height: f64,
}

/// A polygon: its vertices in order (the ring closes by itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolygonGeometry {
    /// 3 to 10,000 `[x, y]` pairs, not all on one line.
    #[schema(value_type = Vec<Vec<f64>>, min_items = 3, max_items = 10000)]
    #[serde(serialize_with = "points")]
    pub points: Vec<[f64; 2]>,
}

/// A point, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointGeometry {
    #[serde(serialize_with = "coordinate")]
    pub x: f64,
    #[serde(serialize_with = "coordinate")]
    pub y: f64,
}

/// An annotation's geometry, one of the three shapes (the annotation's `shape` says which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Geometry {
    Box(BoxGeometry),
    Polygon(PolygonGeometry),
    Point(PointGeometry),
}

/// A rule a geometry breaks: the field (`geometry.width`, `geometry.points`, ...) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The size of the image a geometry is drawn on, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub width: f64,
    pub height: f64,
}

impl Geometry {
    /// Reads `value` as a `shape` geometry and checks it against `bounds`. Errors name the
    /// field under `geometry` that breaks a rule.
    pub fn parse(shape: Shape, value: &Value, bounds: Bounds) -> Result<Geometry, Invalid> {
        // serde would fill a struct from an array, positionally.
        if !value.is_object() {
            return Err(invalid("geometry", "must be a JSON object"));
        }
        let geometry = match shape {
            Shape::Box => serde_json::from_value(value.clone()).map(Geometry::Box),
            Shape::Polygon => serde_json::from_value(value.clone()).map(Geometry::Polygon),
            Shape::Point => serde_json::from_value(value.clone()).map(Geometry::Point),
        }
        .map_err(|e| {
            let expected = match shape {
                Shape::Box => r#"{"x", "y", "width", "height"} (numbers)"#,
                Shape::Polygon => r#"{"points": [[x, y], ...]} (numbers)"#,
                Shape::Point => r#"{"x", "y"} (numbers)"#,
            };
            invalid(
                "geometry",
                format!("a {} geometry is {expected}: {e}", shape.name()),
            )
        })?;
        geometry.check(bounds)?;
        Ok(geometry)
    }

    /// Reads a geometry stored by [`Geometry::parse`] (its JSON, for `shape`), without
    /// checking it again.
    pub fn from_stored(shape: Shape, json: &str) -> serde_json::Result<Geometry> {
        match shape {
            Shape::Box => serde_json::from_str(json).map(Geometry::Box),
            Shape::Polygon => serde_json::from_str(json).map(Geometry::Polygon),
            Shape::Point => serde_json::from_str(json).map(Geometry::Point),
        }
    }

    /// The shape this geometry is.
    pub fn shape(&self) -> Shape {
        match self {
            Geometry::Box(_) => Shape::Box,
            Geometry::Polygon(_) => Shape::Polygon,
            Geometry::Point(_) => Shape::Point,
        }
    }

    fn check(&self, bounds: Bounds) -> Result<(), Invalid> {
        let inside_x = |field: &str, x: f64| -> Result<(), Invalid> {
            if (0.0..=bounds.width).contains(&x) {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    format!("{x} is outside the image (0 to {})", bounds.width),
                ))
            }
        };
        let inside_y = |field: &str, y: f64| -> Result<(), Invalid> {
            if (0.0..=bounds.height).contains(&y) {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    format!("{y} is outside the image (0 to {})", bounds.height),
                ))
            }
        };
        match self {
            Geometry::Box(b) => {
                if b.width.is_nan() || b.width <= 0.0 {
                    return Err(invalid("geometry.width", "must be greater than 0"));
                }
                if b.height.is_nan() || b.height <= 0.0 {
                    return Err(invalid("geometry.height", "must be greater than 0"));
                }
                inside_x("geometry.x", b.x)?;
                inside_y("geometry.y", b.y)?;
                if b.x + b.width > bounds.width {
                    return Err(invalid(
                        "geometry.width",
                        format!(
                            "the box ends at x = {}, outside the image (width {})",
                            b.x + b.width,
                            bounds.width
                        ),
                    ));
                }
                if b.y + b.height > bounds.height {
                    return Err(invalid(
                        "geometry.height",
                        format!(
                            "the box ends at y = {}, outside the image (height {})",
                            b.y + b.height,
                            bounds.height
                        ),
                    ));
                }
            }
            Geometry::Polygon(p) => {
                let n = p.points.len();
                if !(3..=MAX_POLYGON_POINTS).contains(&n) {
                    return Err(invalid(
                        "geometry.points",
                        format!("a polygon has 3 to {MAX_POLYGON_POINTS} points, not {n}"),
                    ));
                }
                for (i, [x, y]) in p.points.iter().enumerate() {
                    inside_x(&format!("geometry.points[{i}]"), *x)?;
                    inside_y(&format!("geometry.points[{i}]"), *y)?;
                }
                if p.is_degenerate() {
                    return Err(invalid(
                        "geometry.points",
                        "the points all lie on one line: a polygon needs an area",
                    ));
                }
            }
            Geometry::Point(p) => {
                inside_x("geometry.x", p.x)?;
                inside_y("geometry.y", p.y)?;
            }
        }
        Ok(())
    }

    /// The bounding box `[x, y, width, height]` (COCO `bbox`). A point is the 1-pixel box
    /// centred on it, moved inside the image where it would cross the border.
    pub fn bbox(&self, bounds: Bounds) -> [f64; 4] {
        match self {
            Geometry::Box(b) => [b.x, b.y, b.width, b.height],
            Geometry::Polygon(p) => {
                let (mut min_x, mut min_y) = (f64::INFINITY, f64::INFINITY);
                let (mut max_x, mut max_y) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
                for [x, y] in &p.points {
                    min_x = min_x.min(*x);
                    min_y = min_y.min(*y);
                    max_x = max_x.max(*x);
                    max_y = max_y.max(*y);
                }
                [min_x, min_y, max_x - min_x, max_y - min_y]
            }
            Geometry::Point(p) => {
                let corner = |v: f64, extent: f64| (v - 0.5).clamp(0.0, (extent - 1.0).max(0.0));
                [
                    corner(p.x, bounds.width),
                    corner(p.y, bounds.height),
                    1.0,
                    1.0,
                ]
            }
        }
    }

    /// The area in square pixels: a box's width times height, a polygon's enclosed area
    /// (`geo::Area`, the shoelace formula), 1 for a point (its 1-pixel box).
    pub fn area(&self) -> f64 {
        match self {
            Geometry::Box(b) => b.width * b.height,
            Geometry::Polygon(p) => p.to_geo().unsigned_area(),
            Geometry::Point(_) => 1.0,
        }
    }

    /// The outline as a flat `[x1, y1, x2, y2, ...]` list (COCO `segmentation` polygon): a
    /// polygon's points, a box's (or a point's 1-pixel box's) four corners clockwise from
    /// the top left.
    pub fn outline(&self, bounds: Bounds) -> Vec<f64> {
        match self {
            Geometry::Polygon(p) => p.points.iter().flat_map(|[x, y]| [*x, *y]).collect(),
            _ => {
                let [x, y, w, h] = self.bbox(bounds);
                vec![x, y, x + w, y, x + w, y + h, x, y + h]
            }
        }
    }
}

impl PolygonGeometry {
    fn to_geo(&self) -> Polygon<f64> {
        let ring: Vec<Coord<f64>> = self
            .points
            .iter()
            .map(|[x, y]| Coord { x: *x, y: *y })
            .collect();
        Polygon::new(LineString::from(ring), Vec::new())
    }

    /// Whether every point lies on one line (or on one spot), by `geo`'s robust orientation
    /// predicate.
    fn is_degenerate(&self) -> bool {
        let coord = |[x, y]: [f64; 2]| Coord { x, y };
        let first = coord(self.points[0]);
        let Some(second) = self.points.iter().map(|p| coord(*p)).find(|c| *c != first) else {
            return true;
        };
        self.points
            .iter()
            .all(|p| RobustKernel::orient2d(first, second, coord(*p)) == Orientation::Collinear)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IMAGE: Bounds = Bounds {
        width: 100.0,
        height: 50.0,
    };

    fn field(shape: Shape, value: Value) -> Option<String> {
        Geometry::parse(shape, &value, IMAGE).err().map(|e| e.field)
    }

    #[test]
    fn boxes_may_touch_the_border_and_not_cross_it() {
        assert_eq!(
            field(Shape::Box, json!([1, 1, 2, 2])),
            Some("geometry".into())
        );
        assert_eq!(field(Shape::Point, json!([1, 1])), Some("geometry".into()));
        let whole = json!({"x": 0, "y": 0, "width": 100, "height": 50});
        assert_eq!(field(Shape::Box, whole), None);
        assert_eq!(
            field(
                Shape::Box,
                json!({"x": 0.5, "y": 0, "width": 100, "height": 50})
            ),
            Some("geometry.width".into())
        );
        assert_eq!(
            field(
                Shape::Box,
                json!({"x": 0, "y": 1, "width": 1, "height": 50})
            ),
            Some("geometry.height".into())
        );
        assert_eq!(
            field(
                Shape::Box,
                json!({"x": -1, "y": 0, "width": 1, "height": 1})
            ),
            Some("geometry.x".into())
        );
        assert_eq!(
            field(Shape::Box, json!({"x": 1, "y": 1, "width": 0, "height": 1})),
            Some("geometry.width".into())
        );
        assert_eq!(
            field(
                Shape::Box,
                json!({"x": 1, "y": 1, "width": 1, "height": -2})
            ),
            Some("geometry.height".into())
        );
        assert_eq!(
            field(Shape::Box, json!({"x": 1, "y": 1, "width": 1})),
            Some("geometry".into())
        );
        assert_eq!(
            field(
                Shape::Box,
                json!({"x": 1, "y": 1, "width": 1, "height": 1, "z": 0})
            ),
            Some("geometry".into())
        );
    }

    #[test]
    fn polygons_need_three_points_off_one_line() {
        let triangle = json!({"points": [[0, 0], [100, 0], [100, 50]]});
        assert_eq!(field(Shape::Polygon, triangle.clone()), None);
        let g = Geometry::parse(Shape::Polygon, &triangle, IMAGE).unwrap();
        assert_eq!(g.area(), 2500.0);
        assert_eq!(g.bbox(IMAGE), [0.0, 0.0, 100.0, 50.0]);
        for degenerate in [
            json!({"points": [[0, 0], [10, 10], [20, 20], [5, 5]]}),
            json!({"points": [[3, 3], [3, 3], [3, 3]]}),
        ] {
            assert_eq!(
                field(Shape::Polygon, degenerate),
                Some("geometry.points".into())
            );
        }
        assert_eq!(
            field(Shape::Polygon, json!({"points": [[0, 0], [1, 1]]})),
            Some("geometry.points".into())
        );
        assert_eq!(
            field(Shape::Polygon, json!({"points": [[0, 0], [1, 1], [1, 51]]})),
            Some("geometry.points[2]".into())
        );
        assert_eq!(
            field(
                Shape::Polygon,
                json!({"points": [[0, 0], [1, 1, 1], [1, 5]]})
            ),
            Some("geometry".into())
        );
        let many: Vec<[f64; 2]> = (0..=MAX_POLYGON_POINTS)
            .map(|i| [(i % 100) as f64, (i % 7) as f64])
            .collect();
        assert_eq!(
            field(Shape::Polygon, json!({ "points": many })),
            Some("geometry.points".into())
        );
    }

    #[test]
    fn geometry_reads_back_as_it_was_sent() {
        for sent in [
            json!({"x": 1, "y": 2.5, "width": 3.25, "height": 4}),
            json!({"points": [[0, 0], [10.5, 0], [0, 7]]}),
            json!({"x": 0.1, "y": 50}),
        ] {
            let shape = if sent.get("points").is_some() {
                Shape::Polygon
            } else if sent.get("width").is_some() {
                Shape::Box
            } else {
                Shape::Point
            };
            let parsed = Geometry::parse(shape, &sent, IMAGE).unwrap();
            let stored = serde_json::to_string(&parsed).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&stored).unwrap(), sent);
            assert_eq!(Geometry::from_stored(shape, &stored).unwrap(), parsed);
        }
    }

    #[test]
    fn points_lie_inside_and_become_one_pixel_boxes() {
        assert_eq!(field(Shape::Point, json!({"x": 100, "y": 50})), None);
        assert_eq!(
            field(Shape::Point, json!({"x": 100.01, "y": 0})),
            Some("geometry.x".into())
        );
        assert_eq!(
            field(Shape::Point, json!({"x": 1, "y": "2"})),
            Some("geometry".into())
        );
        let corner = Geometry::parse(Shape::Point, &json!({"x": 100, "y": 0}), IMAGE).unwrap();
        assert_eq!(corner.bbox(IMAGE), [99.0, 0.0, 1.0, 1.0]);
        assert_eq!(corner.area(), 1.0);
        assert_eq!(corner.outline(IMAGE).len(), 8);
    }
}
