#include "kernels.h"

uint32_t bench_nbody_steps = 300000;

#define NB 5
typedef struct {
	double x, y, z, vx, vy, vz, m;
} body;

static body bodies[NB];

static double nb_sqrt(double x)
{
	return __builtin_sqrt(x);
}

uint32_t bench_nbody(void)
{
	const double pi = 3.141592653589793, solar = 4 * pi * pi, dpy = 365.24;
	static const double init[NB][7] = {
		{0, 0, 0, 0, 0, 0, 1},
		{4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
		 1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05,
		 9.54791938424326609e-04},
		{8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
		 -2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05,
		 2.85885980666130812e-04},
		{1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
		 2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05,
		 4.36624404335156298e-05},
		{1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
		 2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05,
		 5.15138902046611451e-05},
	};
	for (int i = 0; i < NB; i++) {
		bodies[i].x = init[i][0];
		bodies[i].y = init[i][1];
		bodies[i].z = init[i][2];
		bodies[i].vx = init[i][3] * dpy;
		bodies[i].vy = init[i][4] * dpy;
		bodies[i].vz = init[i][5] * dpy;
		bodies[i].m = init[i][6] * solar;
	}
	double dt = 0.01;
	for (uint32_t s = 0; s < bench_nbody_steps; s++) {
		for (int i = 0; i < NB; i++) {
			body *a = &bodies[i];
			for (int j = i + 1; j < NB; j++) {
				body *b = &bodies[j];
				double dx = a->x - b->x, dy = a->y - b->y, dz = a->z - b->z;
				double d2 = dx * dx + dy * dy + dz * dz;
				double mag = dt / (d2 * nb_sqrt(d2));
				a->vx -= dx * b->m * mag;
				a->vy -= dy * b->m * mag;
				a->vz -= dz * b->m * mag;
				b->vx += dx * a->m * mag;
				b->vy += dy * a->m * mag;
				b->vz += dz * a->m * mag;
			}
		}
		for (int i = 0; i < NB; i++) {
			bodies[i].x += dt * bodies[i].vx;
			bodies[i].y += dt * bodies[i].vy;
			bodies[i].z += dt * bodies[i].vz;
		}
	}
	double e = 0;
	for (int i = 0; i < NB; i++)
		e += bodies[i].x * 1000.0 + bodies[i].vy;
	return (uint32_t)(int64_t)(e * 1e6);
}
