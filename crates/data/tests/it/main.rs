mod loaders;
