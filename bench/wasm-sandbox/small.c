/* The benchmark's small module (a few hundred bytes). */
int add(int a, int b)
{
	return a + b;
}

int fib(int n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}
