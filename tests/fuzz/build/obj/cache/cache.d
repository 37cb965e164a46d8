build/obj/cache/cache.o: ../../cache/cache.c ../../cache/cache.h

../../cache/cache.h:
