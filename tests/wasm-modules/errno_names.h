/* The errno names the WASI test modules print, so that their expected
 * output reads as the errors do. Included by the modules that need it. */
#include <errno.h>
#include <stdio.h>

static const char *ename(int e)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {
	    {0, "ok"},
	    {EBADF, "EBADF"},
	    {EBUSY, "EBUSY"},
	    {EDQUOT, "EDQUOT"},
	    {EEXIST, "EEXIST"},
	    {EFAULT, "EFAULT"},
	    {EINVAL, "EINVAL"},
	    {EIO, "EIO"},
	    {EISDIR, "EISDIR"},
	    {ELOOP, "ELOOP"},
	    {ENAMETOOLONG, "ENAMETOOLONG"},
	    {ENOENT, "ENOENT"},
	    {ENOSPC, "ENOSPC"},
	    {ENOSYS, "ENOSYS"},
	    {ENOTCAPABLE, "ENOTCAPABLE"},
	    {ENOTDIR, "ENOTDIR"},
	    {ENOTEMPTY, "ENOTEMPTY"},
	    {ENOTSUP, "ENOTSUP"},
	    {EPERM, "EPERM"},
	    {EROFS, "EROFS"},
	    {ESPIPE, "ESPIPE"},
	};
	static char other[24];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	snprintf(other, sizeof(other), "errno %d", e);
	return other;
}

/* The result of a call that returns -1 and sets errno. */
static const char *res(int rc)
{
	return ename(rc < 0 ? errno : 0);
}
