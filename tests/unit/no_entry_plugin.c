/*
 * A test shared object that loads fine but is not an mgrok plugin: it
 * exports a function, just not mgrok_plugin_entry.
 */
#if defined(__GNUC__)
#define EXPORT __attribute__((visibility("default")))
#else
#define EXPORT
#endif

EXPORT int mgrok_test_not_a_plugin(void);

int mgrok_test_not_a_plugin(void) { return 42; }
