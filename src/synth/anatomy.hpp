#pragma once
// Analytic shape tests shared by planning (nodule placement) and rendering. All coordinates are
// pixel edge coordinates of the output image; a pixel's centre is (c + 0.5, r + 0.5).

#include <algorithm>
#include <cmath>

#include "radprobe/synth/phantom.hpp"

namespace radprobe::synth::detail {

inline double side_sign(int side) {
    return side == 0 ? -1.0 : 1.0;
}
inline int side_of(const Geometry& g, double x) {
    return x < g.xm ? 0 : 1;
}

/// Vertical position within the lung, 0 at the apex, 1 at 85% of the lung height and below.
inline double lung_t(const Geometry& g, double y) {
    return std::clamp((y - g.y_apex) / (0.85 * (g.y_cp - g.y_apex)), 0.0, 1.0);
}

/// Lateral lung border (distance from the midline) at row y: widens from the apex and is
/// vertical over the lowest 15%, where it reaches th exactly.
inline double lung_lateral(const Geometry& g, double y) {
    const double u = 1.0 - lung_t(g, y);
    return g.th * (1.0 - (1.0 - g.lat_apex_frac) * u * u);
}

/// Medial lung border (mediastinum) at row y for a side; side 1 carries the aortic knob.
inline double lung_medial(const Geometry& g, int side, double y) {
    double d = g.med_half * (1.0 + 0.4 * lung_t(g, y));
    if (side == 1) {
        const double z = (y - g.knob_y) / g.knob_w;
        d += g.knob_amp * std::exp(-z * z);
    }
    return d;
}

/// Hemidiaphragm y at distance d from the midline on a side (dome: highest at dome_d).
inline double diaphragm_y(const Geometry& g, int side, double d) {
    const double top = g.dome_top[side];
    const double dd = g.dome_d[side];
    if (d >= dd) {
        const double u = (d - dd) / (g.th - dd);
        return top + (g.y_cp - top) * u * u;
    }
    const double u = (dd - d) / dd;
    return top + (g.y_card[side] - top) * u * u;
}

inline double diaphragm_at(const Geometry& g, double x) {
    const int side = side_of(g, x);
    return diaphragm_y(g, side, std::abs(x - g.xm));
}

/// The hemithorax air space of a side (before removing the heart).
inline bool in_lung_shape(const Geometry& g, int side, double x, double y) {
    const double d = side_sign(side) * (x - g.xm);
    if (y < g.y_apex || d <= 0.0) {
        return false;
    }
    const double da = d - g.apex_d[side];
    if (y < g.y_apex + g.apex_curv * da * da) {
        return false;
    }
    if (d > lung_lateral(g, y) || d < lung_medial(g, side, y)) {
        return false;
    }
    return y <= diaphragm_y(g, side, d);
}

/// The cardiac silhouette: an ellipse with different half-widths left and right of its centre,
/// sitting on the diaphragm (clipped below it). Widest at row heart_cy.
inline bool in_heart(const Geometry& g, double x, double y) {
    const double a = x < g.heart_cx ? g.heart_a[0] : g.heart_a[1];
    const double u = (x - g.heart_cx) / a;
    const double v = std::abs(y - g.heart_cy) / g.heart_b;
    if (u * u > 1.0 || v > 1.0) {
        return false;
    }
    // Fuller than an ellipse above the widest row (|v|^2.6), so the borders rise steeply into
    // the mediastinum instead of closing into a ball.
    const double vv = y < g.heart_cy ? std::pow(v, 2.6) : v * v;
    return u * u + vv <= 1.0 && y <= diaphragm_at(g, x);
}

inline bool in_lung_field(const Geometry& g, int side, double x, double y) {
    return in_lung_shape(g, side, x, y) && !in_heart(g, x, y);
}

/// The retracted (collapsed) lung of a pneumothorax: the lung shape scaled towards the
/// retraction centre laterally (fx) and apically (fy). Medial / basal parts do not move.
inline bool in_collapsed_lung(const Geometry& g, const Pneumothorax& p, double x, double y) {
    const double s = side_sign(p.side);
    double qx = x;
    if (s * (x - p.cx) > 0.0) {
        qx = p.cx + (x - p.cx) / p.fx;
    }
    double qy = y;
    if (y < p.cy) {
        qy = p.cy + (y - p.cy) / p.fy;
    }
    return in_lung_shape(g, p.side, qx, qy);
}

/// Lung where markings are visible: the lung field minus any pneumothorax space.
inline bool in_visible_lung(const Geometry& g, const std::optional<Pneumothorax>& ptx, int side,
                            double x, double y) {
    if (!in_lung_field(g, side, x, y)) {
        return false;
    }
    if (ptx && ptx->side == side && !in_collapsed_lung(g, *ptx, x, y)) {
        return false;
    }
    return true;
}

}  // namespace radprobe::synth::detail
