// Rendering: masks from the analytic shapes, an attenuation map, the exposure curve, blur and
// noise.

#include <algorithm>
#include <cmath>

#include "anatomy.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/synth/phantom.hpp"
#include "raster.hpp"

namespace radprobe::synth {

using detail::draw_segment;
using detail::side_sign;

namespace {

constexpr double kPi = 3.14159265358979323846;

// Attenuation contributions (arbitrary units; the display value is 1 - exp(-gain · A)).
constexpr double kSoftTissue = 0.95;
constexpr double kSkin = 0.15;
constexpr double kLungAir = 0.84;
constexpr double kAbdomen = 0.12;
constexpr double kHeart = 0.08;
constexpr double kVessel = 0.10;
constexpr double kTexture = 0.03;
constexpr double kPtxAir = 0.07;
constexpr double kPleuralLine = 0.12;
constexpr double kTrachea = 0.28;
constexpr double kGastric = 0.30;
constexpr double kSpine = 0.22;
constexpr double kPosteriorRib = 0.14;
constexpr double kAnteriorRib = 0.05;
constexpr double kClavicle = 0.26;
constexpr double kTube = 0.9;

double smoothstep(double e0, double e1, double x) {
    const double t = std::clamp((x - e0) / (e1 - e0), 0.0, 1.0);
    return t * t * (3.0 - 2.0 * t);
}

struct Segment {
    double x0, y0, x1, y1, sigma, amp;
};

// Per-thread scratch buffers reused across images: fresh multi-100-KiB buffers per image cost
// more in page faults than the drawing itself (measured: ~45% of render time).
struct Workspace {
    std::vector<double> att;
    std::vector<float> vessels, texture, layer_a, layer_b;
    std::vector<std::uint8_t> visible;
    std::vector<Segment> segments;
};

Workspace& workspace() {
    thread_local Workspace ws;
    return ws;
}

void grow_vessels(Rng& rng, std::vector<Segment>& out, double x, double y, double angle, double len,
                  double sigma, double amp, int depth) {
    // Two slightly bent pieces per branch, so vessels are not ruler-straight.
    const double bend = rng.uniform(-0.25, 0.25);
    const double xm = x + 0.5 * len * std::cos(angle);
    const double ym = y + 0.5 * len * std::sin(angle);
    const double x1 = xm + 0.5 * len * std::cos(angle + bend);
    const double y1 = ym + 0.5 * len * std::sin(angle + bend);
    out.push_back({x, y, xm, ym, sigma, amp});
    out.push_back({xm, ym, x1, y1, sigma * 0.93, amp});
    if (depth == 0) {
        return;
    }
    angle += bend;
    const double spread_a = rng.uniform(0.2, 0.6);
    const double spread_b = rng.uniform(0.2, 0.6);
    const double shrink_a = rng.uniform(0.62, 0.84);
    const double shrink_b = rng.uniform(0.62, 0.84);
    const double child_sigma = std::max(0.3, sigma * 0.72);
    grow_vessels(rng, out, x1, y1, angle - spread_a, len * shrink_a, child_sigma, amp * 0.84,
                 depth - 1);
    grow_vessels(rng, out, x1, y1, angle + spread_b, len * shrink_b, child_sigma, amp * 0.84,
                 depth - 1);
}

// Vessel trees from each hilum, drawn into a [0, 1] layer.
void vessel_layer(const Geometry& g, Rng& rng, int size, std::vector<float>& layer,
                  std::vector<Segment>& segs) {
    layer.assign(static_cast<std::size_t>(size) * size, 0.0f);
    segs.clear();
    const double k = g.scale;
    // Root directions for side 1 (image right) in image angles (y down); mirrored for side 0.
    const double roots[] = {-1.45, -0.95, -0.45, 0.0, 0.45, 0.9, 1.3};
    for (int side = 0; side < 2; ++side) {
        const double s = side_sign(side);
        const double hx = g.xm + s * (g.med_half + rng.uniform(0.03, 0.05) * k);
        const double hy = g.y_apex + (g.y_cp - g.y_apex) * rng.uniform(0.38, 0.46);
        for (double root : roots) {
            double angle = root + rng.uniform(-0.15, 0.15);
            if (side == 0) {
                angle = kPi - angle;
            }
            const double len = rng.uniform(0.05, 0.075) * k;
            const double sigma = std::max(0.5, rng.uniform(0.005, 0.0075) * k);
            grow_vessels(rng, segs, hx, hy, angle, len, sigma, 1.0, 5);
        }
    }
    for (const Segment& sg : segs) {
        draw_segment(layer, size, sg.x0, sg.y0, sg.x1, sg.y1, sg.sigma, sg.amp);
    }
}

// A smooth random field (bilinear interpolation of a coarse grid of normals).
void texture_layer(Rng& rng, int size, std::vector<float>& out) {
    constexpr int kGrid = 24;
    std::vector<double> grid((kGrid + 1) * (kGrid + 1));
    for (double& v : grid) {
        v = rng.normal();
    }
    out.resize(static_cast<std::size_t>(size) * size);
    const double step = static_cast<double>(size) / kGrid;
    for (int r = 0; r < size; ++r) {
        const double gy = (r + 0.5) / step;
        const int iy = std::min(kGrid - 1, static_cast<int>(gy));
        const double fy = gy - iy;
        for (int c = 0; c < size; ++c) {
            const double gx = (c + 0.5) / step;
            const int ix = std::min(kGrid - 1, static_cast<int>(gx));
            const double fx = gx - ix;
            const double* row0 = &grid[iy * (kGrid + 1)];
            const double* row1 = &grid[(iy + 1) * (kGrid + 1)];
            const double top = row0[ix] * (1 - fx) + row0[ix + 1] * fx;
            const double bottom = row1[ix] * (1 - fx) + row1[ix + 1] * fx;
            out[static_cast<std::size_t>(r) * size + c] =
                static_cast<float>(top * (1 - fy) + bottom * fy);
        }
    }
}

// Bone band profile across a rib / clavicle: brighter cortical edges, soft 1 px boundary.
double bone_profile(double q, double half_px) {
    const double aq = std::abs(q);
    if (aq >= 1.0) {
        return 0.0;
    }
    const double edge = std::clamp((1.0 - aq) * half_px, 0.0, 1.0);
    const double q2 = q * q;
    return (0.55 + 0.45 * q2 * q2) * edge;
}

// Adds a bone band whose centreline is y = centre(d) for d in [d0, d1] on one side.
template <typename Centre>
void add_band(std::vector<double>& att, const Geometry& g, int size, int side, double d0, double d1,
              double thick, double amp, Centre centre, double fade_medial, double fade_lateral) {
    const double s = side_sign(side);
    for (int c = 0; c < size; ++c) {
        const double d = s * (c + 0.5 - g.xm);
        if (d < d0 || d > d1) {
            continue;
        }
        const double yc = centre(d);
        const double h = 1e-3 * g.scale;
        const double slope = (centre(d + h) - centre(d - h)) / (2 * h);
        const double half = 0.5 * thick * std::sqrt(1.0 + slope * slope);
        const double taper =
            smoothstep(d0, d0 + fade_medial, d) * (1.0 - smoothstep(d1 - fade_lateral, d1, d));
        const int r0 = std::max(0, static_cast<int>(std::floor(yc - half)));
        const int r1 = std::min(size - 1, static_cast<int>(std::ceil(yc + half)));
        for (int r = r0; r <= r1; ++r) {
            const double q = (r + 0.5 - yc) / half;
            att[static_cast<std::size_t>(r) * size + c] += amp * taper * bone_profile(q, half);
        }
    }
}

}  // namespace

std::uint16_t to_stored(float v) {
    const double x = std::clamp(static_cast<double>(v), 0.0, 1.0);
    return static_cast<std::uint16_t>(std::lround(x * 65535.0));
}

Phantom render(const PhantomCase& pc) {
    const int S = pc.size;
    RADPROBE_ASSERT(S > 0, "phantom size");
    const Geometry& g = pc.geometry;
    const std::size_t npix = static_cast<std::size_t>(S) * S;
    Phantom out;
    out.size = S;
    out.heart.assign(npix, 0);
    out.lung_right.assign(npix, 0);
    out.lung_left.assign(npix, 0);
    out.pneumothorax.assign(npix, 0);
    Workspace& ws = workspace();
    std::vector<std::uint8_t>& visible = ws.visible;  // lung with markings (not pneumothorax)
    visible.assign(npix, 0);

    // Masks.
    for (int r = 0; r < S; ++r) {
        const double y = r + 0.5;
        for (int c = 0; c < S; ++c) {
            const double x = c + 0.5;
            const std::size_t i = static_cast<std::size_t>(r) * S + c;
            const bool heart = detail::in_heart(g, x, y);
            out.heart[i] = heart ? 255 : 0;
            const int side = detail::side_of(g, x);
            if (heart || !detail::in_lung_shape(g, side, x, y)) {
                continue;
            }
            (side == 0 ? out.lung_right : out.lung_left)[i] = 255;
            const bool ptx =
                pc.ptx && pc.ptx->side == side && !detail::in_collapsed_lung(g, *pc.ptx, x, y);
            out.pneumothorax[i] = ptx ? 255 : 0;
            visible[i] = ptx ? 0 : 1;
        }
    }

    Rng texture_rng(pc.texture_seed);
    vessel_layer(g, texture_rng, S, ws.vessels, ws.segments);
    texture_layer(texture_rng, S, ws.texture);
    const std::vector<float>& vessels = ws.vessels;
    const std::vector<float>& texture = ws.texture;

    // Attenuation.
    std::vector<double>& att = ws.att;
    att.assign(npix, 0.0);
    const double k = g.scale;
    for (int r = 0; r < S; ++r) {
        const double y = r + 0.5;
        // Body half-width: neck, widening over the shoulders, slightly narrower abdomen.
        // sqrt of a smoothstep: rounded, sloping shoulders rather than a flat top edge.
        double body = g.neck_half + (g.body_half - g.neck_half) *
                                        std::sqrt(smoothstep(g.shoulder_y0, g.shoulder_y1, y));
        body *= 1.0 - 0.08 * smoothstep(g.y_cp, g.y_cp + 0.3 * k, y);
        const double t = detail::lung_t(g, y);
        const double lateral = detail::lung_lateral(g, y);
        for (int c = 0; c < S; ++c) {
            const double x = c + 0.5;
            const std::size_t i = static_cast<std::size_t>(r) * S + c;
            const double dx = x - g.xm;
            const double ad = std::abs(dx);
            if (ad >= body) {
                continue;
            }
            const double u = ad / body;
            double a = kSkin + kSoftTissue * std::sqrt(1.0 - u * u);
            const int side = dx < 0 ? 0 : 1;
            const double ydia = detail::diaphragm_y(g, side, ad);
            if (y > ydia) {
                a += kAbdomen * std::sqrt(1.0 - u * u);
            }
            if (out.heart[i]) {
                a += kHeart;
            }
            const bool lung = (side == 0 ? out.lung_right[i] : out.lung_left[i]) != 0;
            if (lung) {
                // Lung thickness: thinner near the chest wall and the apex, thicker below.
                const double da = ad - g.apex_d[side];
                const double ytop = g.y_apex + g.apex_curv * da * da;
                double depth =
                    (0.8 + 0.2 * t) * (0.72 + 0.28 * smoothstep(0.0, 0.2 * g.th, lateral - ad));
                depth *= 0.75 + 0.25 * smoothstep(ytop, ytop + 0.08 * k, y);
                a -= kLungAir * depth;
                if (visible[i]) {
                    a += kVessel * vessels[i] + kTexture * texture[i];
                } else {
                    a -= kPtxAir;
                }
            }
            // Trachea and main bronchi (air columns) above the carina.
            if (y < g.carina_y && ad < g.trachea_half) {
                const double q = ad / g.trachea_half;
                a -= kTrachea * std::sqrt(1.0 - q * q) *
                     (1.0 - smoothstep(g.carina_y - 0.02 * k, g.carina_y, y));
            }
            // Gastric bubble under the left (side 1) dome.
            if (side == 1 && y > ydia) {
                const double bx = (dx - 0.55 * g.th) / (0.07 * k);
                const double by = (y - (g.dome_top[1] + 0.045 * k)) / (0.035 * k);
                const double q = bx * bx + by * by;
                if (q < 1.0) {
                    a -= kGastric * std::sqrt(1.0 - q) * smoothstep(ydia, ydia + 2.0, y);
                }
            }
            // Spine with vertebral bodies (darker disc spaces).
            if (ad < g.spine_half) {
                const double q = ad / g.spine_half;
                const double phase = y / g.vert_period + g.vert_phase;
                const double frac = phase - std::floor(phase);
                const double disc =
                    smoothstep(0.0, 0.12, frac) * (1.0 - smoothstep(0.88, 1.0, frac));
                a += kSpine * std::sqrt(1.0 - q * q) * (0.6 + 0.4 * disc) *
                     smoothstep(g.shoulder_y0 - 0.1 * k, g.shoulder_y0, y);
            }
            att[i] = a;
        }
    }
    // Main bronchi.
    {
        std::vector<float>& bronchi = ws.layer_a;
        bronchi.assign(npix, 0.0f);
        for (int side = 0; side < 2; ++side) {
            const double s = side_sign(side);
            draw_segment(bronchi, S, g.xm, g.carina_y - 0.01 * k, g.xm + s * 0.06 * k,
                         g.carina_y + 0.05 * k, 0.45 * g.trachea_half, 1.0);
        }
        for (std::size_t i = 0; i < npix; ++i) {
            att[i] -= 0.6 * kTrachea * bronchi[i];
        }
    }
    // Bones: posterior ribs, anterior ribs, clavicles.
    for (int side = 0; side < 2; ++side) {
        for (int n = 0; n < 11; ++n) {
            const double y0 = g.rib_y0 + n * g.rib_spacing;
            const double th = g.th;
            const double drop = 1.0 + 0.05 * n;
            auto centre = [&, y0, th, drop](double d) {
                const double u = d / th;
                return y0 + th * drop * (-0.14 * u + 0.42 * u * u * u);
            };
            add_band(att, g, S, side, 0.8 * g.spine_half, 1.07 * th, g.rib_thick * (0.9 + 0.02 * n),
                     kPosteriorRib, centre, 0.03 * k, 0.03 * k);
        }
        for (int n = 0; n < 7; ++n) {
            const double y_lat = g.y_apex + 0.02 * k + n * g.rib_spacing * 1.05;
            const double th = g.th;
            auto centre = [y_lat, th](double d) {
                return y_lat + 0.45 * (th - d) * (1.0 - 0.3 * (th - d) / th);
            };
            add_band(att, g, S, side, 0.3 * th, 1.04 * th, g.rib_thick * 1.25, kAnteriorRib, centre,
                     0.12 * th, 0.03 * k);
        }
        const double d_med = 0.03 * k;
        const double d_lat = g.th + 0.06 * k;
        const double ym = g.clav_y_med;
        const double yl = g.clav_y_lat;
        auto clavicle = [=](double d) {
            const double v = (d - d_med) / (d_lat - d_med);
            return ym + (yl - ym) * v + 0.012 * k * std::sin(2.0 * kPi * v);
        };
        add_band(att, g, S, side, d_med, d_lat, g.clav_thick, kClavicle, clavicle, 0.01 * k,
                 0.02 * k);
    }
    // Pneumothorax: the visceral pleural line, on the collapsed-lung side of the boundary.
    if (pc.ptx) {
        const int reach = std::max(1, S / 320);
        const auto& lung = pc.ptx->side == 0 ? out.lung_right : out.lung_left;
        for (int r = 0; r < S; ++r) {
            for (int c = 0; c < S; ++c) {
                const std::size_t i = static_cast<std::size_t>(r) * S + c;
                if (!lung[i] || out.pneumothorax[i]) {
                    continue;
                }
                bool near = false;
                for (int dr = -reach; dr <= reach && !near; ++dr) {
                    for (int dc = -reach; dc <= reach && !near; ++dc) {
                        const int rr = r + dr;
                        const int cc = c + dc;
                        if (rr >= 0 && rr < S && cc >= 0 && cc < S &&
                            std::abs(dr) + std::abs(dc) <= reach) {
                            near = out.pneumothorax[static_cast<std::size_t>(rr) * S + cc] != 0;
                        }
                    }
                }
                if (near) {
                    att[i] += kPleuralLine;
                }
            }
        }
    }
    // Nodules: spheres (path length ∝ sqrt(1 - r²/R²)), strictly inside their radius.
    for (const Nodule& nd : pc.nodules) {
        const int c0 = std::max(0, static_cast<int>(std::floor(nd.cx - nd.radius)));
        const int c1 = std::min(S - 1, static_cast<int>(std::ceil(nd.cx + nd.radius)));
        const int r0 = std::max(0, static_cast<int>(std::floor(nd.cy - nd.radius)));
        const int r1 = std::min(S - 1, static_cast<int>(std::ceil(nd.cy + nd.radius)));
        for (int r = r0; r <= r1; ++r) {
            for (int c = c0; c <= c1; ++c) {
                const double ex = (c + 0.5 - nd.cx) / nd.radius;
                const double ey = (r + 0.5 - nd.cy) / nd.radius;
                const double q = ex * ex + ey * ey;
                if (q < 1.0) {
                    att[static_cast<std::size_t>(r) * S + c] += nd.contrast * std::sqrt(1.0 - q);
                }
            }
        }
        Box box;
        box.label = "nodule";
        const double m = nd.radius + 2.0 * g.blur_sigma;
        box.x0 = std::max(0, static_cast<int>(std::floor(nd.cx - m)));
        box.y0 = std::max(0, static_cast<int>(std::floor(nd.cy - m)));
        box.x1 = std::min(S, static_cast<int>(std::ceil(nd.cx + m)));
        box.y1 = std::min(S, static_cast<int>(std::ceil(nd.cy + m)));
        out.boxes.push_back(box);
    }
    // Chest tube: a straight external part, then a curve to the apex; tram-track profile.
    if (pc.tube) {
        const ChestTube& tb = *pc.tube;
        std::vector<float>& outer = ws.layer_a;
        std::vector<float>& lumen = ws.layer_b;
        outer.assign(npix, 0.0f);
        lumen.assign(npix, 0.0f);
        auto draw = [&](double x0, double y0, double x1, double y1) {
            draw_segment(outer, S, x0, y0, x1, y1, tb.width, 1.0);
            draw_segment(lumen, S, x0, y0, x1, y1, 0.45 * tb.width, 1.0);
        };
        draw(tb.x[0], tb.y[0], tb.x[1], tb.y[1]);
        constexpr int kPieces = 24;
        double px = tb.x[1];
        double py = tb.y[1];
        for (int n = 1; n <= kPieces; ++n) {
            const double u = static_cast<double>(n) / kPieces;
            const double w0 = (1 - u) * (1 - u);
            const double w1 = 2 * u * (1 - u);
            const double w2 = u * u;
            const double qx = w0 * tb.x[1] + w1 * tb.x[2] + w2 * tb.x[3];
            const double qy = w0 * tb.y[1] + w1 * tb.y[2] + w2 * tb.y[3];
            draw(px, py, qx, qy);
            px = qx;
            py = qy;
        }
        for (std::size_t i = 0; i < npix; ++i) {
            att[i] += kTube * (outer[i] - 0.45 * lumen[i]);
        }
    }

    // Exposure curve, heel effect, blur (detector MTF), noise.
    out.image.resize(npix);
    for (int r = 0; r < S; ++r) {
        const double heel = 1.0 + g.heel * ((r + 0.5) / S - 0.5);
        for (int c = 0; c < S; ++c) {
            const std::size_t i = static_cast<std::size_t>(r) * S + c;
            double v = 1.0 - std::exp(-g.gain * std::max(0.0, att[i]));
            v = (g.contrast * (v - 0.5) + 0.5 + g.bias) * heel;
            out.image[i] = static_cast<float>(v);
        }
    }
    detail::gaussian_blur(out.image, S, g.blur_sigma);
    Rng noise(pc.noise_seed);
    for (float& v : out.image) {
        const double x = v + g.noise_sigma * noise.normal();
        v = static_cast<float>(std::clamp(x, 0.0, 1.0));
    }
    return out;
}

}  // namespace radprobe::synth
