/*
 * husk's built-in infra ("pause") process. It holds the pod's namespaces
 * open for as long as the pod lives, so it must cost nearly nothing: it is
 * built static with -Os and does no allocation. When the pod shares one PID
 * namespace it is PID 1 there, so it reaps orphaned children; and since PID 1
 * gets no default action for signals, it must handle SIGTERM and SIGINT
 * itself or StopPodSandbox would always end in SIGKILL.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_exit_signal(int sig) {
	(void)sig;
	_exit(0);
}

static void on_child(int sig) {
	(void)sig;
	/* Reap every exited child; the infra container never waits for any
	 * particular one. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv) {
	struct sigaction sa;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		static const char v[] = "husk-pause\n";
		write(1, v, sizeof(v) - 1);
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_exit_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);

	for (;;)
		pause();
	return 1;
}
