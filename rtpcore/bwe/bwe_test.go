package bwe

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGrowthIsPow: growth is math.Pow(increasePerSec, dt) to the bit for
// every dt rateControl passes it (whole microseconds over a second, up to
// one), and for a few outside that.
func TestGrowthIsPow(t *testing.T) {
	for us := range int64(1_000_001) {
		dt := float64(us) / 1e6
		if g, p := growth(dt), math.Pow(increasePerSec, dt); math.Float64bits(g) != math.Float64bits(p) {
			t.Fatalf("growth(%v) = %v, Pow %v", dt, g, p)
		}
	}
	for _, dt := range []float64{-0.3, -1e-9, 1e-300, math.Nextafter(0.5, 0), math.Nextafter(0.5, 1), math.Nextafter(1, 0), 1.5, 2} {
		if g, p := growth(dt), math.Pow(increasePerSec, dt); math.Float64bits(g) != math.Float64bits(p) {
			t.Fatalf("growth(%v) = %v, Pow %v", dt, g, p)
		}
	}
}

// refTrend is the trendline's regression as it was written first: the
// window shifted down by one for each new point, the least squares over
// it in two passes.
type refTrend struct {
	xs, ys [trendWindow]float64
	n      int
}

func (r *refTrend) add(x, y float64) (slope float64, ok bool) {
	if r.n < trendWindow {
		r.xs[r.n], r.ys[r.n] = x, y
		r.n++
	} else {
		copy(r.xs[:], r.xs[1:])
		copy(r.ys[:], r.ys[1:])
		r.xs[trendWindow-1], r.ys[trendWindow-1] = x, y
	}
	if r.n < trendWindow {
		return 0, false
	}
	var mx, my float64
	for i := range r.n {
		mx += r.xs[i]
		my += r.ys[i]
	}
	mx /= float64(r.n)
	my /= float64(r.n)
	var num, den float64
	for i := range r.n {
		num += (r.xs[i] - mx) * (r.ys[i] - my)
		den += (r.xs[i] - mx) * (r.xs[i] - mx)
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

// TestTrendlineRing: the trendline on its ring gives the trend of the
// shifted window to the bit, on random group arrivals and delay
// variations (runs of equal arrivals too: a zero denominator).
func TestTrendlineRing(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, 12))
	flat := 0
	for run := range 20 {
		e := New(Config{})
		var ref refTrend
		arr := rnd.Int64N(1 << 40)
		for i := range 5000 {
			if run%3 != 0 || rnd.IntN(30) == 0 { // mostly still every third run
				arr += rnd.Int64N(40_000)
			}
			v := rnd.NormFloat64() * math.Pow(10, float64(rnd.IntN(5)-2))
			acc, smoothed, deltas, firstArr := e.acc, e.smoothed, e.deltas, e.firstArr
			if e.nTrend == 0 && deltas == 0 {
				firstArr = arr
			}
			acc += v
			smoothed = trendSmoothing*smoothed + (1-trendSmoothing)*acc
			slope, ok := ref.add(float64(arr-firstArr)/1000, smoothed)
			if !ok && ref.n == trendWindow {
				flat++
			}
			before := e.trend
			e.trendline(arr, v)
			want := before
			if ok {
				want = slope * float64(min(deltas+1, 60)) * trendGain
			}
			if math.Float64bits(e.trend) != math.Float64bits(want) {
				t.Fatalf("run %d, group %d: trend %v, want %v", run, i, e.trend, want)
			}
		}
	}
	if flat == 0 {
		t.Fatal("no window of equal arrivals")
	}
	t.Logf("%d windows of equal arrivals", flat)
}

// TestAddAckedBuckets: addAcked with its shortcut for the last bucket
// fills the buckets as the plain computation does, on arrivals around
// bucket edges, around zero (the quotient truncates towards it), and far
// apart.
func TestAddAckedBuckets(t *testing.T) {
	rnd := rand.New(rand.NewPCG(13, 14))
	e := New(Config{})
	var buckets, bucketAt [len(e.buckets)]int64
	at := int64(-3_000_000)
	for i := range 200_000 {
		switch rnd.IntN(10) {
		case 0:
			at = rnd.Int64N(1_000_000) - 500_000 // near zero
		case 1: // an edge of the last arrival's bucket, either side
			at = at/50_000*50_000 + []int64{-50_000, -49_999, -1, 0, 1, 49_999, 50_000}[rnd.IntN(7)]
		case 2:
			at += rnd.Int64N(2_000_000) - 1_000_000
		default:
			at += rnd.Int64N(30_000) - 5_000
		}
		size := 100 + rnd.Int64N(1100)
		e.addAcked(at, size)
		b := (at / 50_000) % int64(len(buckets))
		if b < 0 {
			b += int64(len(buckets))
		}
		if slot := at / 50_000 * 50_000; bucketAt[b] != slot {
			bucketAt[b], buckets[b] = slot, 0
		}
		buckets[b] += size
		if e.buckets != buckets || e.bucketAt != bucketAt {
			t.Fatalf("arrival %d at %d: buckets %v at %v, want %v at %v", i, at, e.buckets, e.bucketAt, buckets, bucketAt)
		}
	}
}
